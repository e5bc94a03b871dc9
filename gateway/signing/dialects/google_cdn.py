"""Google Cloud CDN signed URLs, URL-prefix signatures and ``Cloud-CDN-Cookie``.

HMAC-SHA1 with a 128-bit key (base64url key file); ``KeyName`` names the
key. The same layout signed with Ed25519 is what Media CDN calls a
"signature" (cookie ``Edge-Cache-Cookie``): an Ed25519 key selects it.
Signatures are base64url with padding (accepted only so). No start time and
no IP binding. The gateway's verifier reads a ``URLPrefix`` at a path-segment
boundary (``url_within_prefix``: ``/v/abc`` covers ``/v/abc/…``, never
``/v/abcd``); the gateway itself signs directories.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial, ed25519_private, ed25519_public
from gateway.model import KeyAlgorithm
from gateway.signing.dialects._common import (
    append_query,
    b64url_any_decode,
    b64url_exact_decode,
    b64url_padded,
    check_window,
    epoch,
    load_pem_key,
    query_pairs,
    signable_prefix,
    single,
    unsupported,
    url_within_prefix,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

_KEY_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_COOKIES = {KeyAlgorithm.HMAC_SHA1: "Cloud-CDN-Cookie", KeyAlgorithm.ED25519: "Edge-Cache-Cookie"}
_URL_PREFIX_PARAM = re.compile(r"[?&]URLPrefix=")


def _signature(key: KeyMaterial, message: str) -> str:
    if key.algorithm is KeyAlgorithm.ED25519:
        raw = ed25519_private(key.require_secret()).sign(message.encode())
    else:
        raw = hmac.new(key.require_secret(), message.encode(), hashlib.sha1).digest()
    return b64url_padded(raw)


def _signature_ok(key: KeyMaterial, message: str, signature: str) -> bool:
    raw = b64url_exact_decode(signature, padded=True)
    if key.algorithm is KeyAlgorithm.ED25519:
        verify_only = KeyMaterial(key.kid, key.algorithm, key.public, None)
        return verify_only.verify(message.encode(), raw)
    expected = hmac.new(key.require_secret(), message.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(expected, raw)


class GoogleCdnDialect:
    name = "google-cdn"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.HMAC_SHA1, KeyAlgorithm.ED25519),
        prefix="URLPrefix",
        cookie=True,
        key_id_field="KeyName",
        revocation="delete the key from the backend (at most 3 per backend); the gateway's verifier refuses at once",
    )

    def describe(self) -> str:
        return "Google Cloud CDN (HMAC-SHA1) and Media CDN signatures (Ed25519): Expires, KeyName, URLPrefix"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """Cloud CDN: the 16-byte key in base64url. Media CDN: a 32-byte Ed25519 seed in base64url, or PEM."""
        if not key_id or not _KEY_NAME.fullmatch(key_id):
            raise InvalidInput("--key-id is the KeyName: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 characters")
        if data.lstrip().startswith(b"-----BEGIN"):
            return load_pem_key(data, key_id)
        try:
            raw = b64url_any_decode(data.strip().decode("ascii"))
        except (VerificationFailed, UnicodeDecodeError):
            raise InvalidInput("the key file holds a base64url key") from None
        if len(raw) == 16:
            return KeyMaterial(key_id, KeyAlgorithm.HMAC_SHA1, None, raw)
        if len(raw) == 32:
            return KeyMaterial(key_id, KeyAlgorithm.ED25519, ed25519_public(raw), raw)
        raise InvalidInput("a Cloud CDN key is 16 bytes; a Media CDN Ed25519 seed is 32 bytes")

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        if request.starts is not None:
            raise unsupported("Google CDN", "start time")
        if request.ip:
            raise unsupported("Google CDN", "client IP")
        tail = f"Expires={request.expires}&KeyName={key.kid}"
        if request.prefix is None:
            to_sign = append_query(request.url, tail)
            return Signed(url=f"{to_sign}&Signature={_signature(key, to_sign)}")
        url_prefix = _url_prefix(request.url, request.prefix)
        encoded = b64url_padded(url_prefix.encode())
        to_sign = f"URLPrefix={encoded}&{tail}"
        url = append_query(request.url, f"{to_sign}&Signature={_signature(key, to_sign)}")
        cookie = f"URLPrefix={encoded}:Expires={request.expires}:KeyName={key.kid}"
        cookie += f":Signature={_signature(key, cookie)}"
        return Signed(url=url, cookies={_COOKIES[key.algorithm]: cookie})

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return _parse(redemption)["KeyName"]

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # KeyName picks the verifying key and is signed

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        fields = _parse(redemption)
        if fields["KeyName"] != key.kid:
            raise VerificationFailed("unknown-key")
        expires = epoch(fields["Expires"])
        prefix = fields.get("URLPrefix")
        if not _signature_ok(key, fields["signed"], fields["Signature"]):
            raise VerificationFailed("bad-signature", signed=fields["signed"])
        check_window(redemption.now, expires)
        if prefix is not None:
            url_prefix = b64url_exact_decode(prefix, padded=True).decode("utf-8", "replace")
            if not url_within_prefix(redemption.url, url_prefix):
                raise VerificationFailed("outside-prefix")
        return Verified(key_id=fields["KeyName"], expires=expires)


def _url_prefix(url: str, prefix: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}{signable_prefix(prefix)}"


def _parse(redemption: Redemption) -> dict[str, str]:
    pairs = query_pairs(redemption.url)
    if any(name == "Signature" for name, _ in pairs):  # a parameter: the path may spell "Signature=" too
        return _parse_url(redemption.url, pairs)
    for name in _COOKIES.values():
        if name in redemption.cookies:
            return _parse_cookie(redemption.cookies[name])
    raise VerificationFailed("malformed")


def _parse_url(url: str, pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields = {n: single(pairs, n) for n in ("URLPrefix", "Expires", "KeyName", "Signature")}
    found = {n: v for n, v in fields.items() if v is not None}
    if {"Expires", "KeyName", "Signature"} - found.keys():
        raise VerificationFailed("malformed")
    head = url.rsplit("&Signature=", 1)[0]
    if head == url or not url.endswith(f"&Signature={found['Signature']}"):
        raise VerificationFailed("malformed")
    if "URLPrefix" in found:
        head = _from_url_prefix(head)
    return {**found, "signed": head}


def _from_url_prefix(head: str) -> str:
    """A URL-prefix signature signs from the URLPrefix parameter on: found in the query, never the path."""
    match = _URL_PREFIX_PARAM.search(head, max(head.find("?"), 0))
    if match is None:
        raise VerificationFailed("malformed")
    return head[match.start() + 1 :]


def _parse_cookie(cookie: str) -> dict[str, str]:
    head, sep, signature = cookie.rpartition(":Signature=")
    parts = dict(p.partition("=")[::2] for p in head.split(":"))
    if not sep or {"URLPrefix", "Expires", "KeyName"} - parts.keys():
        raise VerificationFailed("malformed")
    return {**parts, "Signature": signature, "signed": head}
