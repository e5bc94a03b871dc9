"""Bunny CDN token authentication (v2.1, HMAC-SHA256).

token = "HS256-" + ["1-" when IP-bound] + base64url-nopad(HMAC-SHA256(key,
path + expires + ip_bytes + signing_data)); ``path`` is ``token_path`` when
set; ``ip_bytes`` is the packed IPv4 address or the IPv6 /64 (low 8 bytes
zeroed); ``signing_data`` is every query parameter, sorted, ``k=v`` joined
with ``&`` (values raw; percent-encoded in the URL). Query form
``/file?token=…&…&expires=…``; directory form ``/bcdn_token=…&…&expires=…/dir/file``.
Because every parameter is signed, the gateway's key id travels as ``gw_kid``.
Parameters are accepted only in the spelling the signer writes (one
percent-encoding, no form decoding). A ``token_path`` is read at a segment
boundary (``/v/abc`` covers ``/v/abc/…``, never ``/v/abcd``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from urllib.parse import quote, unquote

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.netaddr import plain_ip
from gateway.signing.dialects._common import (
    b64url_nopad,
    check_window,
    epoch,
    same_text,
    shared_secret,
    signable_prefix,
    single_address,
    split_url,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified
from gateway.signing.paths import path_problem, path_within

ATTRIBUTION_ARG = "gw_kid"
_DIRECTORY_MARK = "/bcdn_token="


def ip_bytes(ip: str) -> bytes:
    address = plain_ip(ipaddress.ip_address(ip))
    if address.version == 4:
        return address.packed
    return address.packed[:8] + bytes(8)


def bunny_token(key: bytes, path: str, expires: int, params: dict[str, str], ip: str | None) -> str:
    signing_data = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    packed = ip_bytes(ip) if ip else b""
    message = path.encode() + str(expires).encode() + packed + signing_data.encode()
    flags = "1-" if ip else ""
    return "HS256-" + flags + b64url_nopad(hmac.new(key, message, hashlib.sha256).digest())


def _url_data(params: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(params.items()))


class BunnyDialect:
    name = "bunny"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.SHARED_SECRET,),
        ip="IPv4 or IPv6 /64",
        prefix="token_path / directory token",
        attribution_field="gw_kid query parameter (all parameters are signed)",
        revocation="one key per pull zone: replace it (old URLs stop at once); "
        "the gateway's verifier refuses the principal's gw_kid at once",
    )

    def describe(self) -> str:
        return "Bunny CDN token authentication v2.1: HMAC-SHA256; expires, IP, token_path, directory tokens"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """The pull zone's Token Authentication Key, as plain text."""
        return shared_secret(data, key_id)

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # every parameter, gw_kid included, is signed

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        if request.starts is not None:
            raise InvalidInput("the Bunny format cannot restrict by start time")
        parts = split_url(request.url)
        params = _own_params(parts.query)
        if request.attribution:
            params[ATTRIBUTION_ARG] = request.attribution
        for name in ("token_countries", "token_countries_blocked", "limit"):
            if name in request.options:
                params[name] = request.options[name]
        directory = request.options.get("directory") == "true"
        prefix = signable_prefix(request.prefix) if request.prefix else None
        if prefix and not directory:
            params["token_path"] = prefix
        path = params.get("token_path", prefix or parts.path)
        ip = single_address(request.ip, "Bunny") if request.ip else None
        token = bunny_token(key.require_secret(), path, request.expires, params, ip)
        base = f"{parts.scheme}://{parts.netloc}"
        if directory:
            return Signed(url=base + _directory_path(token, params, request.expires, parts.path))
        tail = f"&{_url_data(params)}" if params else ""
        return Signed(url=f"{base}{parts.path}?token={token}{tail}&expires={request.expires}")

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        path, token, params, expires, directory = _parse(redemption.url)
        if "token_path" in params and not path_within(path, params["token_path"]):
            raise VerificationFailed("outside-prefix")
        ip_bound = _ip_bound(token)
        ip = redemption.client_ip if ip_bound else None
        if ip_bound and not ip:
            raise VerificationFailed("wrong-ip")
        candidates = [params["token_path"]] if "token_path" in params else _scopes(path, directory)
        try:
            expected = [bunny_token(key.require_secret(), p, expires, params, ip) for p in candidates]
        except ValueError:
            raise VerificationFailed("wrong-ip") from None
        if not any(same_text(e, token) for e in expected):
            raise VerificationFailed("bad-signature-or-wrong-ip" if ip else "bad-signature")
        check_window(redemption.now, expires)
        return Verified(key_id=None, expires=expires, attribution=params.get(ATTRIBUTION_ARG))


_DIGEST_CHARS = 43  # unpadded base64url of a SHA-256 MAC


def _ip_bound(token: str) -> bool:
    """The "1-" flag, told apart by length from a digest that merely starts with "1-"."""
    body = token.removeprefix("HS256-")
    if len(body) == _DIGEST_CHARS:
        return False
    if len(body) == _DIGEST_CHARS + 2 and body.startswith("1-"):
        return True
    raise VerificationFailed("malformed")


def _own_params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in (p for p in query.split("&") if p):
        name, _, value = part.partition("=")
        name, value = unquote(name.replace("+", " ")), unquote(value.replace("+", " "))
        if name in params:
            raise InvalidInput(f"Bunny tokens cannot carry the repeated parameter {name!r}")
        params[name] = value
    return params


def _directory_path(token: str, params: dict[str, str], expires: int, path: str) -> str:
    tail = f"&{_url_data(params)}" if params else ""
    full = f"{_DIRECTORY_MARK}{token}{tail}&expires={expires}{path}"
    if path_problem(full) is not None:
        raise InvalidInput("these Bunny parameters cannot travel in a canonical path: use the query form")
    return full


def _signed_params(query: str) -> dict[str, str]:
    """Parameters as presented, each in the one spelling the signer writes."""
    params: dict[str, str] = {}
    for part in (p for p in query.split("&") if p):
        raw_name, _, raw_value = part.partition("=")
        name, value = unquote(raw_name), unquote(raw_value)
        if quote(name, safe="") != raw_name or quote(value, safe="") != raw_value or name in params:
            raise VerificationFailed("malformed")
        params[name] = value
    return params


def _scopes(path: str, directory: bool) -> list[str]:
    """A directory token signs a directory: the path's own directories, deepest first."""
    if not directory:
        return [path]
    segments = path.split("/")
    return [path] + ["/".join(segments[:end]) + "/" for end in range(len(segments) - 1, 0, -1)]


def _parse(url: str) -> tuple[str, str, dict[str, str], int, bool]:
    parts = split_url(url)
    directory = parts.path.startswith(_DIRECTORY_MARK)
    if directory:
        head, slash, rest = parts.path[len(_DIRECTORY_MARK) :].partition("/")
        query, path = f"token={head}", slash + rest
    else:
        query, path = parts.query, parts.path
    params = _signed_params(query)
    token, expires = params.pop("token", None), params.pop("expires", None)
    if not token or not expires:
        raise VerificationFailed("malformed")
    return path, token, params, epoch(expires), directory
