"""Google Media CDN tokens (``edge-cache-token``): Ed25519 or HMAC-SHA256/SHA1.

Fields joined with ``~``: one of ``URLPrefix`` (base64url, no padding),
``FullPath`` or ``PathGlobs``; optional ``Starts``, ``Expires``, ``SessionID``,
``Data``, ``Headers``, ``IPRanges`` (base64url of a comma list, IPv4 and
IPv6); then ``Signature`` (Ed25519, base64url) or ``hmac`` (lower-case hex).
``FullPath`` and ``Headers`` are signed differently from how they appear:
the token carries a bare ``FullPath`` and the signature covers
``FullPath=<request path>``, so a presented ``FullPath=…`` is malformed (it
would be signed as written and bind no path), and a full path holding ``~``,
the field separator, is refused when signing and verifying (``/a~x`` would
sign ``FullPath=/a`` plus a field ``x``). A token has exactly one scope field
and only the fields the format defines. The token has no key name, so the
gateway's key id travels in ``Data``. The token is read as sent (no
percent-decoding), each field at most once, and the signature in its one
spelling. A ``URLPrefix`` is read at a path-segment boundary
(``url_within_prefix``). ``Starts`` is signed: it is returned as the issue
time a link revocation is compared with (the gateway signs start = issue
time). An ``hmac`` is checked with the profile's ``hmac_hash`` only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial, ed25519_private, ed25519_public
from gateway.model import KeyAlgorithm
from gateway.netaddr import parse_network
from gateway.signing.dialects._common import (
    append_query,
    b64url_any_decode,
    b64url_exact_decode,
    b64url_nopad,
    check_ip_in,
    check_window,
    epoch,
    glob_match,
    load_pem_key,
    query_pairs,
    same_text,
    signable_prefix,
    single,
    split_url,
    url_within_prefix,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

TOKEN_PARAM = "edge-cache-token"  # noqa: S105 (a parameter name)
COOKIE = "Edge-Cache-Cookie"
_HMAC = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
_SCOPES = ("URLPrefix", "FullPath", "PathGlobs")
_FIELDS = frozenset([*_SCOPES, "Starts", "Expires", "SessionID", "Data", "Headers", "IPRanges"])


def token_fields(
    *,
    expires: int,
    url_prefix: str | None = None,
    full_path: str | None = None,
    path_globs: str | None = None,
    starts: int | None = None,
    session_id: str | None = None,
    data: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    ip_ranges: str | None = None,
) -> tuple[list[str], list[str]]:
    """(token fields, signed fields) in Media CDN's order."""
    if "~" in (full_path or "") + (path_globs or ""):
        # The signed text is split at '~': '/a~PathGlobs=/*' would sign a second scope field.
        raise InvalidInput("a Media CDN full path or path glob cannot contain '~' (the field separator)")
    if full_path:
        token, signed = ["FullPath"], [f"FullPath={full_path}"]
    elif path_globs:
        token = signed = [f"PathGlobs={path_globs.strip()}"]
    elif url_prefix:
        token = signed = ["URLPrefix=" + b64url_nopad(url_prefix.encode())]
    else:
        raise InvalidInput("a Media CDN token needs a URL prefix, a full path or path globs")
    token, signed = list(token), list(signed)
    optional = [("Starts", starts), ("Expires", expires), ("SessionID", session_id), ("Data", data)]
    both = [f"{name}={value}" for name, value in optional if value is not None]
    token, signed = token + both, signed + both
    if headers:
        token.append("Headers=" + ",".join(n for n, _ in headers))
        signed.append("Headers=" + ",".join(f"{n}={v}" for n, v in headers))
    if ip_ranges:
        field = "IPRanges=" + b64url_nopad(ip_ranges.encode("ascii"))
        token, signed = [*token, field], [*signed, field]
    return token, signed


def sign_fields(token: list[str], signed: list[str], key: KeyMaterial, hmac_hash: str = "sha256") -> str:
    message = "~".join(signed).encode()
    if key.algorithm is KeyAlgorithm.ED25519:
        signature = "Signature=" + b64url_nopad(ed25519_private(key.require_secret()).sign(message))
    else:
        signature = "hmac=" + hmac.new(key.require_secret(), message, _HMAC[hmac_hash]).hexdigest()
    return "~".join([*token, signature])


class MediaCdnDialect:
    name = "media-cdn"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.ED25519, KeyAlgorithm.HMAC_SHA256),
        starts=True,
        ip="IPv4/IPv6 ranges",
        prefix="URLPrefix, PathGlobs",
        cookie=True,
        attribution_field="Data",
        revocation="keyset: remove the key (shared secrets cached up to 1 h at the edge); "
        "the gateway's verifier refuses the principal's key id in Data at once",
    )

    def describe(self) -> str:
        return "Google Media CDN token: Ed25519 or HMAC; URLPrefix/FullPath/PathGlobs, Starts, IPRanges, Data"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """An Ed25519 seed (32 bytes) or HMAC secret, base64url as Google prints them; or Ed25519 PEM."""
        if data.lstrip().startswith(b"-----BEGIN"):
            return load_pem_key(data, key_id)
        try:
            raw = b64url_any_decode(data.strip().decode("ascii"))
        except (VerificationFailed, UnicodeDecodeError):
            raise InvalidInput("the key file holds a base64url key") from None
        if key_id == "hmac" or len(raw) != 32:
            return KeyMaterial(key_id or "", KeyAlgorithm.HMAC_SHA256, None, raw)
        return KeyMaterial(key_id or "", KeyAlgorithm.ED25519, ed25519_public(raw), raw)

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # Data is a signed field

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        parts = split_url(request.url)
        ip_ranges = ",".join(str(parse_network(r)) for r in request.ip.split(",")) if request.ip else None
        prefix = f"{parts.scheme}://{parts.netloc}{signable_prefix(request.prefix)}" if request.prefix else None
        hmac_hash = _hmac_hash(request.options)
        token, signed = token_fields(
            expires=request.expires,
            url_prefix=prefix,
            full_path=None if prefix else parts.path,
            starts=request.starts,
            data=request.attribution,
            ip_ranges=ip_ranges,
        )
        value = sign_fields(token, signed, key, hmac_hash)
        return Signed(url=append_query(request.url, f"{TOKEN_PARAM}={value}"), cookies={COOKIE: value})

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        token = _token(redemption)
        fields, signature_field = _split(token)
        signed = [_signed_form(f, redemption.url) for f in fields]
        hmac_hash = _hmac_hash(redemption.options)
        if not _signature_ok(key, "~".join(signed).encode(), signature_field, hmac_hash):
            raise VerificationFailed("bad-signature", signed="~".join(signed))
        values = _values(fields)
        expires = epoch(values.get("Expires", ""))
        starts = epoch(values["Starts"]) if "Starts" in values else None
        check_window(redemption.now, expires, starts)
        _check_scope(values, redemption.url)
        if "IPRanges" in values:
            ranges = b64url_any_decode(values["IPRanges"]).decode("ascii", "replace")
            check_ip_in(ranges.split(","), redemption.client_ip)
        return Verified(key_id=None, expires=expires, attribution=values.get("Data"), issued_at=starts)


def _hmac_hash(options: Mapping[str, str]) -> str:
    hmac_hash = options.get("hmac_hash", "sha256")
    if hmac_hash not in _HMAC:
        raise InvalidInput("Media CDN hmac_hash is sha256 or sha1")
    return hmac_hash


def _token(redemption: Redemption) -> str:
    value = single(query_pairs(redemption.url), TOKEN_PARAM) or redemption.cookies.get(COOKIE)
    if not value:
        raise VerificationFailed("malformed")
    return value


def _values(fields: list[str]) -> dict[str, str]:
    values = dict(f.partition("=")[::2] for f in fields)
    if len(values) != len(fields):
        raise VerificationFailed("malformed")  # a field given twice: two readings of one token
    if not _FIELDS.issuperset(values):
        raise VerificationFailed("malformed")  # a name the format does not define: text smuggled into a field
    return values


def _split(token: str) -> tuple[list[str], str]:
    fields = token.split("~")
    if len(fields) < 2 or not fields[-1].startswith(("Signature=", "hmac=")):
        raise VerificationFailed("malformed")
    return fields[:-1], fields[-1]


def _signed_form(field: str, url: str) -> str:
    if field == "FullPath":
        path = split_url(url).path
        if "~" in path:
            raise VerificationFailed("malformed")  # never signed: it would read as more than one field
        return f"FullPath={path}"
    if field.startswith(("FullPath=", "Headers=")):
        # FullPath is sent bare and always signs the request path: a value would be signed as written
        # and bind nothing. Header-bound tokens are not verified here.
        raise VerificationFailed("malformed")
    return field


def _signature_ok(key: KeyMaterial, message: bytes, field: str, hmac_hash: str) -> bool:
    name, _, value = field.partition("=")
    if name == "Signature":
        if key.algorithm is not KeyAlgorithm.ED25519:
            return False
        return KeyMaterial(key.kid, key.algorithm, key.public, None).verify(
            message, b64url_exact_decode(value, padded=False)
        )
    if key.secret is None or key.algorithm is KeyAlgorithm.ED25519:
        return False
    # The configured hash only: trying each would accept a second, unconfigured MAC of one token.
    return same_text(hmac.new(key.secret, message, _HMAC[hmac_hash]).hexdigest(), value)


def _check_scope(values: dict[str, str], url: str) -> None:
    """Exactly one scope field; FullPath needs no check here: its signed form is the request path."""
    if sum(name in values for name in _SCOPES) != 1:
        raise VerificationFailed("malformed")
    if "URLPrefix" in values:
        prefix = b64url_any_decode(values["URLPrefix"]).decode("utf-8", "replace")
        if not url_within_prefix(url, prefix):
            raise VerificationFailed("outside-prefix")
    elif "PathGlobs" in values:
        path = split_url(url).path
        globs = values["PathGlobs"].replace("!", ",").split(",")
        if not any(glob_match(g, path) for g in globs):
            raise VerificationFailed("outside-prefix")
