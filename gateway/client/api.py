"""What the client does, without doing any I/O: requests to make, answers to read, when to retry, what to reuse.

Each call is a *flow*: a generator that yields the ``Request`` it needs sent
and receives the decoded JSON answer (or has the typed error thrown into
it), then returns the result. ``GatewayClient`` (blocking, the standard
library's ``http.client``) and ``AsyncGatewayClient`` (aiohttp) only send
requests and drive the same flows, so the two cannot drift apart.

- **Principal tokens** are minted from the credential file
  (``gateway.access.tokens.mint_principal_token``, as ``gatewayctl token``
  does) and re-minted before they expire.
- **Reuse**: a signed URL is handed out again for the same request (item,
  rendition, options, viewer) until ``reuse_fraction`` of its lifetime has
  passed (0 turns it off): the backend makes fewer calls and the browser and
  CDN see the same URL. A reused URL is the same issuance, with its one audit
  record.
- **Retries**: 429 and 503 (and 502/504 from a proxy, and no answer at all)
  are retried with exponential backoff and jitter, or after exactly the
  seconds of ``Retry-After`` when the gateway sends it, up to
  ``RetryPolicy.attempts`` tries; a 429 asking for longer than
  ``max_retry_after`` is raised at once.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict
from urllib.parse import quote

from gateway.access.credential_file import CredentialFile, read_credential
from gateway.access.tokens import mint_principal_token
from gateway.client.errors import ApiError, RateLimited, TransportError, Unavailable, error_for

Clock = Callable[[], float]
USER_AGENT = "media-gateway-client"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


# What one call hands the transport, and what it gets back: the decoded JSON answer (None for an empty body).
Flow = Generator[Request, Any, Any]


@dataclass(frozen=True)
class SignedUrl:
    media_id: str
    rendition: str
    url: str
    expires_at: int
    kid: str
    issuance_id: str
    profile: str
    cookies: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignedUrl:
        names = ("media_id", "rendition", "url", "expires_at", "kid", "issuance_id", "profile")
        return cls(**{name: data[name] for name in names}, cookies=dict(data.get("cookies", {})))


class Viewer(TypedDict, total=False):
    """A viewer the backend vouches for itself (needs ``sign:on-behalf``)."""

    id: str
    workspaces: list[str]


class SignOptions(TypedDict, total=False):
    """``POST /v1/sign``'s fields besides the item (README, "HTTP API")."""

    ttl: int
    scope: Literal["path", "prefix"]
    form: Literal["query", "path"]
    profile: str
    client_ip: str
    viewer_token: str  # the viewer's own token from your identity provider, passed through
    viewer: Viewer
    viewer_ip: str


class Item(TypedDict, total=False):
    """One item of a batch: ``media_id`` and ``rendition`` are required."""

    media_id: str
    rendition: str
    ttl: int
    scope: Literal["path", "prefix"]
    form: Literal["query", "path"]
    profile: str
    client_ip: str


_VIEWER_FIELDS = ("viewer_token", "viewer", "viewer_ip")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    backoff: float = 0.2  # seconds before the second try; doubled each time, with jitter
    max_backoff: float = 5.0
    max_retry_after: float = 30.0  # a Retry-After longer than this is not waited for: the error is raised

    def delay(self, attempt: int, error: ApiError, jitter: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before try ``attempt + 1`` (0-based) after ``error``; None: give up and raise it."""
        if attempt + 1 >= self.attempts or not isinstance(error, RateLimited | Unavailable | TransportError):
            return None
        if error.retry_after:
            return float(error.retry_after) if error.retry_after <= self.max_retry_after else None
        return min(self.max_backoff, self.backoff * 2.0**attempt) * (0.5 + jitter() / 2)


class UrlCache:
    """Signed URLs by request, each until ``fraction`` of its remaining lifetime has passed; least recently used
    out first."""

    def __init__(self, fraction: float, size: int) -> None:
        if not 0 <= fraction < 1:
            raise ValueError("reuse_fraction must be from 0 (never reuse) to below 1")
        self._fraction = fraction
        self._size = size
        self._urls: OrderedDict[bytes, tuple[SignedUrl, float]] = OrderedDict()

    @staticmethod
    def key(body: Mapping[str, Any]) -> bytes:
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()

    def get(self, key: bytes, now: float) -> SignedUrl | None:
        found = self._urls.get(key)
        if found is None or now >= found[1]:
            return None
        self._urls.move_to_end(key)
        return found[0]

    def put(self, key: bytes, signed: SignedUrl, now: float) -> None:
        if not self._fraction:
            return
        self._urls[key] = (signed, now + self._fraction * (signed.expires_at - now))
        self._urls.move_to_end(key)
        while len(self._urls) > self._size:
            self._urls.popitem(last=False)


class PrincipalToken:
    """The ``Authorization`` header: a token given as is, or minted from a credential file and renewed."""

    def __init__(self, credential: CredentialFile | str | Path | None, token: str | None, ttl: int) -> None:
        if (credential is None) == (token is None):
            raise ValueError("give a credential (file) or a token, not both")
        if isinstance(credential, str | Path):
            credential = read_credential(Path(credential))
        self._credential = credential
        self._token = token or ""
        self._ttl = ttl
        self._renew_at = float("-inf") if credential else float("inf")

    def header(self, now: float) -> str:
        if now >= self._renew_at and self._credential is not None:
            c = self._credential
            self._token = mint_principal_token(
                credential_id=c.credential_id, principal_id=c.principal, private_seed=c.seed,
                audience=c.audience, now=now, ttl=self._ttl,
            )  # fmt: skip
            self._renew_at = now + self._ttl * 3 / 4
        return f"Bearer {self._token}"


def decode(response: Response, now: float) -> Any:
    """The JSON answer, or the typed error it stands for."""
    try:
        data = json.loads(response.body) if response.body else None
    except ValueError:
        data = None
        if response.status < 400:
            raise TransportError(f"the gateway answered {response.status} with a body that is not JSON") from None
    if response.status < 400:
        return data
    error = data if isinstance(data, dict) else {}
    code, message = str(error.get("error", "")), str(error.get("message", f"HTTP {response.status}"))
    raise error_for(response.status, code)(
        message, status=response.status, code=code, request_id=response.headers.get("x-request-id"),
        retry_after=retry_after(response.headers.get("retry-after"), now),
    )  # fmt: skip


def retry_after(value: str | None, now: float) -> float:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date (RFC 9110 §10.2.3); 0 when absent."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - now)


class Settings(TypedDict, total=False):
    """What both clients take besides the base URL (README, "Python client")."""

    credential: CredentialFile | str | Path  # the principal's credential file (or its path): tokens are minted
    token: str  # or a principal token as is (it is not renewed)
    ssl_context: ssl.SSLContext  # trust in the gateway's CA, and a client certificate where it asks for one
    timeout: float  # seconds per request
    retry: RetryPolicy
    reuse_fraction: float  # 0.5: a URL is handed out again until half its lifetime has passed; 0: never
    cache_size: int
    token_ttl: int  # seconds a minted principal token lives (at most api.max_token_lifetime)
    batch_size: int  # items per /v1/sign/batch call (at most signing.batch_max_items)
    clock: Clock


class Api:
    """The calls, as flows (module docstring). ``clock`` is the wall clock URLs and tokens are timed by."""

    def __init__(self, settings: Settings) -> None:
        cache = UrlCache(settings.get("reuse_fraction", 0.5), settings.get("cache_size", 10_000))
        credential, token = settings.get("credential"), settings.get("token")
        self.token = PrincipalToken(credential, token, settings.get("token_ttl", 300))
        self.cache = cache
        self.clock = settings.get("clock", time.time)
        self.batch_size = settings.get("batch_size", 100)
        self.retry = settings.get("retry", RetryPolicy())
        self.timeout = settings.get("timeout", 10.0)
        self.ssl_context = settings.get("ssl_context")

    def headers(self, request: Request) -> dict[str, str]:
        headers = {"Authorization": self.token.header(self.clock()), "User-Agent": USER_AGENT}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def sign(self, media_id: str, rendition: str, options: SignOptions) -> Flow:
        body = {"media_id": media_id, "rendition": rendition, **options}
        key = UrlCache.key(body)
        reused = self.cache.get(key, self.clock())
        if reused is not None:
            return reused
        signed = SignedUrl.from_json((yield Request("POST", "/v1/sign", body)))
        self.cache.put(key, signed, self.clock())
        return signed

    def sign_batch(self, items: Sequence[Item], viewer: SignOptions) -> Flow:
        """One result per item, in order: a ``SignedUrl``, or the ``ApiError`` that item was refused with."""
        shared = {name: viewer[name] for name in _VIEWER_FIELDS if name in viewer}  # type: ignore[literal-required]
        keys = [UrlCache.key({**item, **shared}) for item in items]
        results: list[SignedUrl | ApiError | None] = [self.cache.get(key, self.clock()) for key in keys]
        missing = [index for index, found in enumerate(results) if found is None]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            answer = yield Request("POST", "/v1/sign/batch", {"items": [items[i] for i in chunk], **shared})
            for index, result in zip(chunk, answer["results"], strict=True):
                results[index] = _batch_result(result)
                if isinstance(results[index], SignedUrl):
                    self.cache.put(keys[index], results[index], self.clock())  # type: ignore[arg-type]
        return results

    @staticmethod
    def call(method: str, path: str, body: Mapping[str, Any] | None = None) -> Flow:
        return (yield Request(method, path, body))

    def explain(self, url: str, profile: str | None, client_ip: str | None) -> Flow:
        body = {
            "url": url,
            **({"profile": profile} if profile else {}),
            **({"client_ip": client_ip} if client_ip else {}),
        }
        return self.call("POST", "/v1/explain", body)

    def media(self, method: str, media_id: str, suffix: str = "", body: Mapping[str, Any] | None = None) -> Flow:
        return self.call(method, f"/v1/media/{quote(media_id, safe='')}{suffix}", body)


def _batch_result(result: Mapping[str, Any]) -> SignedUrl | ApiError:
    if result.get("status") == 200:
        return SignedUrl.from_json(result)
    status, code = int(result["status"]), str(result["error"])
    return error_for(status, code)(str(result["message"]), status=status, code=code)
