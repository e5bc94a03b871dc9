"""The gateway's own signed-URL format (``native``, version GW2).

Query parameters appended to the URL: ``gw_exp``, ``gw_iat``, optional
``gw_nbf``, ``gw_ip`` and ``gw_pfx``, then ``gw_kid`` and ``gw_sig``. The
signature covers the canonical string specified in docs/native-format.md; the
algorithm comes from the key, never from the URL. ``gw_iat``, the issue time,
is required and signed: a link revocation at time R refuses every URL whose
``gw_iat <= R`` (``Verified.issued_at``). GW1 URLs, which lack it, are
malformed. The signer writes the canonical path into the URL; the verifier
accepts only that spelling (``non-canonical-path``) and only the spelling of
each ``gw_`` parameter the signer writes (numbers without leading zeros).

Path tokens: a prefix token may travel as the first path segment instead,
``/_t/<token>/v/abc/seg.ts`` (``gateway.signing.path_tokens``), where
``<token>`` is the unpadded base64url of exactly the ``gw_`` parameters the
query form would carry, in the signer's order. Its string to sign is the
query prefix token's: the two forms of one token grant exactly the same
paths, times, address and key, so either can be rewritten into the other
without gaining anything. The claims then apply to the path after the token
segment; a URL with both a path token and ``gw_`` query parameters is
malformed.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote, unquote

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial, b64url, b64url_decode
from gateway.model import KeyAlgorithm
from gateway.netaddr import parse_network, plain_ip
from gateway.signing import path_tokens
from gateway.signing.dialects._common import b64url_any_decode, b64url_exact_decode, decimal, load_pem_key, split_url
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified
from gateway.signing.paths import canonical_path, canonical_prefix, canonical_query, path_problem, split_query

VERSION = "GW2"
_PARAMS = ("gw_exp", "gw_iat", "gw_nbf", "gw_ip", "gw_pfx", "gw_kid", "gw_sig")
_REQUIRED = ("gw_exp", "gw_iat", "gw_kid", "gw_sig")
_MAX_INT = 2**53
# gw_pfx travels in the query: escape what would end or split the parameter ('%' escapes are kept).
_PFX_SAFE = "/%-._~!$'()*,:@"


@dataclass(frozen=True)
class NativeToken:
    # The path the claims apply to: for a path token, the path after its segment.
    path: str
    query: list[tuple[str, str]]
    params: dict[str, str]
    in_path: bool = False
    # A prefix token's gw_ parameters in the spec's order (``reuse_key``), joined once per parse, not per request.
    reuse: str | None = None


def string_to_sign(
    *,
    algorithm: str,
    kid: str,
    issued_at: int,
    expires: int,
    starts: int | None,
    ip: str | None,
    scope: str,
    query: str,
) -> bytes:
    fields = [VERSION, algorithm, kid, str(issued_at), str(expires), _opt(starts), ip or "", scope, query]
    return "\n".join(fields).encode("ascii")


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _scope(path: str, prefix: str | None) -> str:
    return f"prefix:{prefix}" if prefix is not None else f"path:{path}"


class _Head(NamedTuple):
    """What every URL one key signs shares: the string to sign's first fields, and the URL's last parameter
    but one (``gw_kid``), each spelled once per key."""

    message: str  # "GW2\n<algorithm>\n<kid>\n"
    kid_param: str  # "&gw_kid=<kid>&gw_sig="


@functools.lru_cache(maxsize=64)
def _head(algorithm: str, kid: str) -> _Head:
    return _Head("\n".join((VERSION, algorithm, kid, "")), f"&gw_kid={kid}&gw_sig=")


def _sign(head: _Head, request: SignRequest, key: KeyMaterial) -> Signed:
    """One URL, as ``string_to_sign`` and the parameter list in the spec's order spell it (``params_text``):
    the same bytes, built from ``head`` and one format string rather than lists joined per field."""
    base, path, pairs, others = _unsigned(request.url)
    prefix = canonical_prefix(request.prefix) if request.prefix is not None else None
    if prefix is not None and not path.startswith(prefix):
        raise InvalidInput("the URL does not lie under the requested prefix")
    if request.path_token and prefix is None:
        raise InvalidInput("a path token is a prefix token: it needs a prefix (scope 'prefix')")
    ip = str(parse_network(request.ip)) if request.ip else None
    issued_at = _issue_time(request)
    expires, starts = request.expires, request.starts
    # The scope, then the signed query: none for a prefix token.
    scoped = f"path:{path}\n{canonical_query(pairs) if pairs else ''}" if prefix is None else f"prefix:{prefix}\n"
    message = f"{head.message}{issued_at}\n{expires}\n{_opt(starts)}\n{ip or ''}\n{scoped}"
    signature = b64url(key.sign(message.encode("ascii")))
    params = f"gw_exp={expires}&gw_iat={issued_at}"
    if starts is not None:
        params += f"&gw_nbf={starts}"
    if ip:
        params += f"&gw_ip={ip}"
    if prefix is not None:
        params += f"&gw_pfx={_pfx_text(prefix)}"
    params += head.kid_param + signature
    if request.path_token:
        token = b64url(params.encode("ascii"))
        return Signed(base + path_tokens.join(token, path) + ("?" + "&".join(others) if others else ""))
    return Signed(f"{base}{path}?{'&'.join(others)}&{params}" if others else f"{base}{path}?{params}")


class NativeDialect:
    name = "native"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.ED25519, KeyAlgorithm.HMAC_SHA256),
        starts=True,
        ip="IPv4/IPv6 CIDR",
        prefix="path prefix (gw_pfx)",
        key_id_field="gw_kid",
        revocation="instant: the gateway's verifier checks the key on every request",
        path_token=True,
    )

    def describe(self) -> str:
        return "gateway native GW2: Ed25519 or HMAC-SHA256; signed issue time, expiry, start, IP/CIDR, path prefix"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """Ed25519 as PEM (private or public); HMAC-SHA256 as the base64url secret."""
        if not key_id:
            raise InvalidInput("the native format needs --key-id (the gw_kid)")
        if data.lstrip().startswith(b"-----BEGIN"):
            loaded = load_pem_key(data, key_id)
            if loaded.algorithm is not KeyAlgorithm.ED25519:
                raise InvalidInput("native PEM keys are Ed25519")
            return loaded
        try:
            secret = b64url_any_decode(data.strip().decode("ascii"))
        except (VerificationFailed, UnicodeDecodeError):
            raise InvalidInput("an HMAC key file holds the base64url secret") from None
        return KeyMaterial(key_id, KeyAlgorithm.HMAC_SHA256, None, secret)

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return self._parse(redemption.url).params["gw_kid"]

    def reuse_key(self, redemption: Redemption) -> str | None:
        """A prefix token's gw_ parameters (in the spec's order): the path and other parameters are not signed.

        Read with the same parser as ``verify`` (a fragment is not part of the query), so a URL is keyed
        as a prefix token exactly when it is verified as one.
        """
        try:
            return self._parse(redemption.url).reuse
        except VerificationFailed:
            return None  # verify refuses it with the precise reason

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # gw_kid picks the verifying key and is in the string to sign

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        return _sign(_head(key.algorithm.value, key.kid), request, key)

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        token = self._parse(redemption.url)
        params = token.params
        expires = _int_param(params, "gw_exp")
        issued_at = _int_param(params, "gw_iat")
        if issued_at > expires:
            raise VerificationFailed("malformed")  # no signer writes it: refused before the signature
        starts = _int_param(params, "gw_nbf") if "gw_nbf" in params else None
        prefix = _prefix_param(params["gw_pfx"]) if "gw_pfx" in params else None
        ip = params.get("gw_ip")
        message = string_to_sign(
            algorithm=key.algorithm.value,
            kid=params["gw_kid"],
            issued_at=issued_at,
            expires=expires,
            starts=starts,
            ip=ip,
            scope=_scope(token.path, prefix),
            query="" if prefix is not None else _signed_query(token.query),
        )
        signature = _signature(params["gw_sig"])
        if params["gw_kid"] != key.kid or not key.verify(message, signature):
            raise VerificationFailed("bad-signature", signed=message.decode("ascii"))
        _check_claims(token.path, prefix, expires, starts, ip, redemption)
        return Verified(key_id=key.kid, expires=expires, issued_at=issued_at, prefix=prefix, identity=message)

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def _parse(url: str) -> NativeToken:
        """Memoised: one request asks for the key id, the reuse key and the claims of the same URL."""
        parts = split_url(url)
        path = parts.path or "/"
        if path_problem(path) is not None:
            raise VerificationFailed("non-canonical-path")
        # Memoised only for a prefix token's query, which every segment under it repeats: any other query
        # carries a signature over its own path and comes back with the same URL (this memo's hit), so keeping
        # it would only push out the prefix tokens' entries.
        query_part = _query_part if _PREFIX in parts.query else _query_part_of
        params, others, reuse = query_part(parts.query)
        in_path = path_tokens.split(path)
        if in_path is None:
            _require(params)
            return NativeToken(path=path, query=others, params=params, reuse=reuse)
        if params:
            raise VerificationFailed("malformed")  # a path token and a query token in one URL: which one counts?
        segment, rest = in_path
        params, reuse = _path_token(segment)
        return NativeToken(path=rest, query=others, params=params, in_path=True, reuse=reuse)


@functools.lru_cache(maxsize=1024)
def _unsigned(url: str) -> tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]]:
    """What signing reads of the unsigned URL: (scheme and host, canonical path, query pairs, query parts as sent).

    Memoised: a deployment signs the same few thousand media URLs over and over, and each is parsed and checked
    alike every time. A URL that is refused raises, and a raise is not remembered. Shared: tuples, never mutated.
    """
    parts = split_url(url)
    path = path_tokens.check_not_reserved(canonical_path(parts.path or "/"))
    pairs = tuple(split_query(parts.query))
    if any(name.startswith("gw_") for name, _ in pairs):
        raise InvalidInput("the URL already carries gw_ parameters")
    base = f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""
    return base, path, pairs, tuple(p for p in parts.query.split("&") if p)


def _query_part_of(query: str) -> tuple[dict[str, str], list[tuple[str, str]], str | None]:
    """A query's gw_ parameters, its other pairs and the reuse key they make. ``_query_part`` memoises it apart
    from the URL: every segment under one prefix token carries the same query, and each segment's URL is new.
    What the memo returns is shared: never mutated."""
    params: dict[str, str] = {}
    others: list[tuple[str, str]] = []
    for name, value in split_query(query):
        if name.startswith("gw_"):
            _add_param(params, name, value)
        else:
            others.append((name, value))
    return params, others, _reuse(params)


_query_part = functools.lru_cache(maxsize=1024)(_query_part_of)
_PREFIX = "gw_pfx"


@functools.lru_cache(maxsize=1024)
def _path_token(segment: str) -> tuple[dict[str, str], str | None]:
    """A path token's parameters and reuse key, memoised like ``_query_part``: one token, many segment URLs."""
    params = token_params(segment)
    return params, _reuse(params)


def _reuse(params: dict[str, str]) -> str | None:
    """What a prefix token's decision is remembered by: its gw_ parameters in the spec's order, whatever order
    they were sent in (the signature does not depend on it: one token, one key). None: not a prefix token."""
    if "gw_pfx" not in params:
        return None
    return params_text(params)


def params_text(params: Mapping[str, str]) -> str:
    """The gw_ parameters as the signer writes them: in the order of the spec, ``name=value`` joined by '&'."""
    return "&".join(f"{name}={params[name]}" for name in _PARAMS if name in params)


def token_params(segment: str) -> dict[str, str]:
    """A path token's parameters, accepted only in the one spelling the signer writes.

    The segment is the unpadded base64url (canonical: re-encoding gives it back) of ``params_text``
    exactly: no other order, no empty or unknown parameter, no padding, and a prefix (``gw_pfx``).
    """
    try:
        text = b64url_exact_decode(segment, padded=False).decode("ascii")
    except UnicodeDecodeError:
        raise VerificationFailed("malformed") from None
    params: dict[str, str] = {}
    for name, value in split_query(text):
        _add_param(params, name, value)
    _require(params)
    if "gw_pfx" not in params or params_text(params) != text:
        raise VerificationFailed("malformed")
    return params


def _add_param(params: dict[str, str], name: str, value: str) -> None:
    if name not in _PARAMS or name in params:
        raise VerificationFailed("malformed")
    params[name] = value  # raw: one spelling only (gw_pfx is checked in _prefix_param)


def _require(params: dict[str, str]) -> None:
    if any(name not in params for name in _REQUIRED):
        raise VerificationFailed("malformed")


def _signed_query(pairs: list[tuple[str, str]]) -> str:
    try:
        return canonical_query(pairs)
    except InvalidInput:
        raise VerificationFailed("malformed") from None


def _pfx_text(prefix: str) -> str:
    return quote(prefix, safe=_PFX_SAFE)


def _prefix_param(raw: str) -> str:
    """The canonical prefix from gw_pfx, accepted only in the one spelling the signer writes."""
    try:
        prefix = canonical_prefix(unquote(raw))
    except InvalidInput:
        raise VerificationFailed("malformed") from None
    if _pfx_text(prefix) != raw:
        raise VerificationFailed("malformed")
    return prefix


def _issue_time(request: SignRequest) -> int:
    """gw_iat: required, and within what the verifier reads (0 <= gw_iat <= gw_exp < 2**53)."""
    if request.issued_at is None:
        raise InvalidInput("the native format signs the issue time: the request has none")
    for value in (request.issued_at, request.expires, request.starts):
        if value is not None and not 0 <= value < _MAX_INT:
            raise InvalidInput(f"native times are POSIX seconds from 0 to 2**53, not {value}")
    if request.issued_at > request.expires:
        raise InvalidInput("the issue time (gw_iat) is after the expiry (gw_exp)")
    return request.issued_at


def _int_param(params: dict[str, str], name: str) -> int:
    """A number in the one spelling the signer writes (no leading zero), below 2**53."""
    number = decimal(params[name])
    if number >= _MAX_INT:
        raise VerificationFailed("malformed")
    return number


def _signature(text: str) -> bytes:
    try:
        return b64url_decode(text)
    except ValueError:
        raise VerificationFailed("bad-signature") from None


def _check_claims(
    path: str,
    prefix: str | None,
    expires: int,
    starts: int | None,
    ip: str | None,
    redemption: Redemption,
) -> None:
    if redemption.now >= expires:
        raise VerificationFailed("expired", expires=expires)
    if starts is not None and redemption.now < starts:
        raise VerificationFailed("not-yet-valid", starts=starts)
    if prefix is not None and not path.startswith(prefix):
        raise VerificationFailed("outside-prefix", prefix=prefix, path=path)
    if ip is not None and not _ip_matches(ip, redemption.client_ip):
        raise VerificationFailed("wrong-ip", bound=ip, client=redemption.client_ip)


def _ip_matches(network_text: str, client_ip: str | None) -> bool:
    if client_ip is None:
        return False
    try:
        network = ipaddress.ip_network(network_text, strict=True)
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    address = plain_ip(address)
    return address.version == network.version and address in network


def presented_claims(url: str) -> dict[str, str]:
    """A native URL's gw_ parameters as presented (in its query or its path token), where they travel, and the
    path they are about; empty when it does not parse. For explanations: nothing here is verified."""
    try:
        token = NativeDialect._parse(url)
    except (VerificationFailed, InvalidInput):
        return {}
    return {**token.params, "form": "path" if token.in_path else "query", "resource_path": token.path}
