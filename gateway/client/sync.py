"""``GatewayClient``: the blocking client, on the standard library's ``http.client`` (no dependency added).

Connections are kept alive and pooled (one per concurrent caller), so a
backend signing on every page view pays for one TLS handshake, not one per
call; the client is safe to share between threads. The calls themselves are
``gateway.client.api``'s flows.
"""

from __future__ import annotations

import http.client
import itertools
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Unpack
from urllib.parse import urlsplit

from gateway.client.api import Api, Flow, Item, Request, Response, Settings, SignedUrl, SignOptions, decode
from gateway.client.errors import ApiError, TransportError


class _Pool:
    def __init__(self, base_url: str, ssl_context: ssl.SSLContext | None, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self._ssl = ssl_context
        self._timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _new(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def send(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        with self._lock:
            reused = self._idle.pop() if self._idle else None
        try:
            return self._exchange(reused or self._new(), method, target, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            if reused is None:
                raise TransportError(f"no answer from the gateway: {exc!r}") from exc
        # A kept-alive connection the server had closed meanwhile: once more on a new one.
        try:
            return self._exchange(self._new(), method, target, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"no answer from the gateway: {exc!r}") from exc

    def _exchange(
        self, conn: http.client.HTTPConnection, method: str, target: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        try:
            conn.request(method, target, body=body, headers=dict(headers))
            answer = conn.getresponse()
            data = answer.read()
        except BaseException:
            conn.close()
            raise
        if answer.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class GatewayClient:
    """Signed URLs for a backend: ``client.sign("intro", "video", viewer_token=token).url``."""

    def __init__(self, base_url: str, *, sleep: Callable[[float], None] = time.sleep, **settings: Unpack[Settings]):
        self._api = Api(settings)
        self._pool = _Pool(base_url, self._api.ssl_context, self._api.timeout)
        self._sleep = sleep

    def sign(self, media_id: str, rendition: str = "video", **options: Unpack[SignOptions]) -> SignedUrl:
        """A signed URL (``POST /v1/sign``), or the one handed out for the same request while still fresh."""
        result: SignedUrl = self._drive(self._api.sign(media_id, rendition, options))
        return result

    def sign_batch(self, items: Sequence[Item], **viewer: Unpack[SignOptions]) -> list[SignedUrl | ApiError]:
        """Many items for one viewer (``POST /v1/sign/batch``, in chunks): a URL or the item's error, in order."""
        results: list[SignedUrl | ApiError] = self._drive(self._api.sign_batch(items, viewer))
        return results

    def explain(self, url: str, *, profile: str | None = None, client_ip: str | None = None) -> dict[str, Any]:
        """Why /v1/verify would refuse ``url`` now (``POST /v1/explain``; the principal needs ``admin``)."""
        answer: dict[str, Any] = self._drive(self._api.explain(url, profile, client_ip))
        return answer

    def put_media(self, media_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._drive(self._api.media("PUT", media_id, body=item))
        return answer

    def get_media(self, media_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._drive(self._api.media("GET", media_id))
        return answer

    def delete_media(self, media_id: str) -> None:
        self._drive(self._api.media("DELETE", media_id))

    def revoke_links(self, media_id: str, reason: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._drive(self._api.media("POST", media_id, "/revoke-links", {"reason": reason}))
        return answer

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drive(self, flow: Flow) -> Any:
        try:
            request = next(flow)
            while True:
                request = flow.send(self._call(request))
        except StopIteration as done:
            return done.value

    def _call(self, request: Request) -> Any:
        body = None if request.body is None else json.dumps(request.body).encode()
        for attempt in itertools.count():
            try:
                headers = self._api.headers(request)
                answer = self._pool.send(request.method, self._pool.prefix + request.path, body, headers)
                return decode(answer, self._api.clock())
            except ApiError as error:
                delay = self._api.retry.delay(attempt, error)
                if delay is None:
                    raise
                self._sleep(delay)
