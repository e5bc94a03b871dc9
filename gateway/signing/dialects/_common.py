"""Helpers shared by the dialect modules: encodings, query strings, claim checks, key files."""

from __future__ import annotations

import base64
import fnmatch
import functools
import hmac
import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.netaddr import plain_ip
from gateway.signing.paths import origin_and_path, path_problem, path_within


def b64url_padded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64url_nopad(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_any_decode(text: str) -> bytes:
    """base64url with or without padding, canonical only; raises VerificationFailed('malformed').

    Canonical means re-encoding gives the same text: otherwise a signature
    with non-zero padding bits would be a second valid spelling of the URL.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise VerificationFailed("malformed") from None
    if b64url_nopad(raw) != text.rstrip("=") or (text.endswith("=") and b64url_padded(raw) != text):
        raise VerificationFailed("malformed")
    return raw


def b64url_exact_decode(text: str, *, padded: bool) -> bytes:
    """base64url in exactly one spelling: with padding, or without, as the format writes it."""
    raw = b64url_any_decode(text)
    if (b64url_padded(raw) if padded else b64url_nopad(raw)) != text:
        raise VerificationFailed("malformed")
    return raw


def same_text(expected: str, presented: str) -> bool:
    """Constant-time comparison of texts; any presented bytes, even non-ASCII, simply mismatch."""
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), presented.encode("utf-8", "surrogatepass"))


def split_url(url: str) -> SplitResult:
    """``urlsplit``, with a malformed URL (an unterminated IPv6 host) a 400 rather than a ValueError."""
    plain = _plain_split(url)
    if plain is not None:
        return plain
    try:
        return urlsplit(url)
    except ValueError:
        raise InvalidInput(f"not a URL: {url!r}") from None


# What every verify presents (a profile's base_url, then an origin-form path and query already checked to be
# printable ASCII without '#'): an absolute URL with no space, no fragment and no bracket in its host. On such
# text ``urlsplit`` removes and strips nothing, takes the scheme up to the first ':' (lowercased), the host up
# to the first of '/?#', the path up to the first '?' and the query after it; ``_plain_split`` does the same in
# a third of the time (``urlsplit`` memoises, but a new URL misses).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*", re.ASCII)


def _plain_split(url: str) -> SplitResult | None:
    """``urlsplit(url)`` for a plain absolute URL (tests/test_dialect_common.py holds it to ``urlsplit``); None
    for any other text, which ``urlsplit`` itself splits."""
    if not (url.isascii() and url.isprintable()) or " " in url or "#" in url:
        return None
    scheme, separator, rest = url.partition("://")
    if not separator or _SCHEME.fullmatch(scheme) is None:
        return None
    end = rest.find("/")
    if end < 0:
        end = len(rest)
    mark = rest.find("?", 0, end)
    netloc = rest[: mark if mark >= 0 else end]
    if "[" in netloc or "]" in netloc:
        return None  # urlsplit checks a bracketed host (IPv6) or refuses a lone bracket
    path, _, query = rest[len(netloc) :].partition("?")
    return SplitResult(scheme.lower(), netloc, path, query, "")


def query_pairs(url: str) -> list[tuple[str, str]]:
    query = split_url(url).query
    return [(n, v) for n, _, v in (p.partition("=") for p in query.split("&") if p)]


def single(pairs: list[tuple[str, str]], name: str) -> str | None:
    """The one value of ``name``; a repeated signature parameter is malformed."""
    values = [v for n, v in pairs if n == name]
    if len(values) > 1:
        raise VerificationFailed("malformed")
    return values[0] if values else None


def required(pairs: list[tuple[str, str]], name: str) -> str:
    value = single(pairs, name)
    if value is None:
        raise VerificationFailed("malformed")
    return value


def decimal(text: str, max_digits: int = 16) -> int:
    """A non-negative integer in its one decimal spelling; raises VerificationFailed('malformed').

    A leading zero is refused: where a format signs the number rather than the
    text (``01800000300`` and ``1800000300`` sign alike), it would be a second
    spelling of the same signed URL.
    """
    if not text.isascii() or not text.isdigit() or len(text) > max_digits or (text[0] == "0" and len(text) > 1):
        raise VerificationFailed("malformed")
    return int(text)


def epoch(text: str) -> int:
    """POSIX seconds, as ``decimal``."""
    return decimal(text)


def append_query(url: str, params: str) -> str:
    """Append already-encoded ``params`` with '?' or '&' depending on the URL itself.

    Decided on the URL being signed, never on a policy resource: a wildcard '?'
    in a CloudFront policy must not turn '?' into '&' (botocore #3377).
    """
    return f"{url}{'&' if split_url(url).query else '?'}{params}"


def check_window(now: float, expires: int, starts: int | None = None) -> None:
    if now >= expires:
        raise VerificationFailed("expired", expires=expires)
    if starts is not None and now < starts:
        raise VerificationFailed("not-yet-valid", starts=starts)


def client_address(client_ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if client_ip is None:
        raise VerificationFailed("wrong-ip")
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        raise VerificationFailed("wrong-ip") from None
    return plain_ip(address)


def check_ip_in(networks: list[str], client_ip: str | None) -> None:
    address = client_address(client_ip)
    for text in networks:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise VerificationFailed("malformed") from None
        if address.version == network.version and address in network:
            return
    raise VerificationFailed("wrong-ip")


def check_ip_exact(expected: str, client_ip: str | None) -> None:
    try:
        wanted = ipaddress.ip_address(expected)
    except ValueError:
        raise VerificationFailed("malformed") from None
    if client_address(client_ip) != wanted:
        raise VerificationFailed("wrong-ip")


def single_address(ip: str, dialect: str) -> str:
    """Formats that bind one exact address refuse a network (400, never a 500)."""
    try:
        network = ipaddress.ip_network(ip.strip(), strict=False)
    except ValueError:
        raise InvalidInput(f"not an IP address: {ip!r}") from None
    if network.num_addresses != 1:
        raise InvalidInput(f"{dialect} binds one exact client address, not a network ({ip})")
    return str(network.network_address)


def signable_prefix(prefix: str) -> str:
    """A prefix to sign: a canonical path. Verifiers read it at a segment boundary (``path_within``)."""
    problem = path_problem(prefix)
    if problem is not None:
        raise InvalidInput(f"prefix {prefix!r} is not a canonical path: {problem}")
    return prefix


def directory_prefix(prefix: str) -> str:
    """A prefix a format extends with a wildcard ('/v/abc/' + '*'): it must end in '/'."""
    if not signable_prefix(prefix).endswith("/"):
        raise InvalidInput("a prefix is a directory: a path ending in '/'")
    return prefix


@functools.lru_cache(maxsize=256)
def _wildcards(pattern: str, star: str, one: str, last_star: str) -> re.Pattern[str]:
    """'*' any run of characters, '?' exactly one, each given as a regex; a final '*' may differ."""
    parts = [star if c == "*" else one if c == "?" else re.escape(c) for c in pattern]
    if pattern.endswith("*"):
        parts[-1] = last_star
    return re.compile("".join(parts), re.DOTALL)


def wildcard_match(pattern: str, value: str) -> bool:
    """Akamai ACL wildcards over a (canonical) path: '*' any run of characters, '?' exactly one."""
    return _wildcards(pattern, ".*", ".", ".*").fullmatch(value) is not None


def resource_match(pattern: str, url: str) -> bool:
    """A CloudFront ``Resource`` against a URL, each wildcard kept inside the part it stands in.

    ``*`` and ``?`` are CloudFront's, with three limits that keep a token from
    reaching outside what its pattern names: a wildcard in the scheme or host
    never reaches the path; a ``*`` crosses '/' but never the query delimiter
    '?', unless it ends the pattern (``https://host/v/abc/*`` admits any query);
    and ``?`` matches one character other than '/'.
    """
    if pattern and not pattern.strip("*"):
        return True
    host_start = pattern.find("://") + 3
    if host_start < 3:
        return False
    slash = pattern.find("/", host_start)
    pattern_origin, pattern_rest = (pattern, "") if slash < 0 else (pattern[:slash], pattern[slash:])
    origin, rest = origin_and_path(url, keep_query=True)
    if not origin or not _wildcards(pattern_origin, "[^/]*", "[^/]", "[^/]*").fullmatch(origin):
        return False
    return _wildcards(pattern_rest, "[^?]*", "[^/]", ".*").fullmatch(rest) is not None


def url_within_prefix(url: str, url_prefix: str) -> bool:
    """A signed URL prefix (scheme, host, path) read at a path-segment boundary (``path_within``)."""
    prefix_origin, prefix_path = origin_and_path(url_prefix, keep_query=True)
    origin, path = origin_and_path(url)
    if not prefix_origin or origin != prefix_origin or not prefix_path.startswith("/"):
        return False
    return "?" not in prefix_path and "#" not in prefix_path and path_within(path, prefix_path)


def unsupported(dialect: str, what: str) -> InvalidInput:
    return InvalidInput(f"the {dialect} format cannot restrict by {what}")


def load_pem_key(data: bytes, key_id: str | None) -> KeyMaterial:
    """A PEM private or public key: RSA-2048, ECDSA P-256 or Ed25519."""
    try:
        private = load_pem_private_key(data, None)
    except (ValueError, TypeError):
        private = None
    if private is not None:
        public = private.public_key()
        secret = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        if isinstance(private, ed25519.Ed25519PrivateKey):
            secret = private.private_bytes_raw()
    else:
        try:
            public = load_pem_public_key(data)
        except ValueError:
            raise InvalidInput("the key file is not a PEM private or public key") from None
        secret = None
    return KeyMaterial(key_id or "", _algorithm_of(public), _public_bytes(public), secret)


def _algorithm_of(public: object) -> KeyAlgorithm:
    if isinstance(public, rsa.RSAPublicKey) and public.key_size >= 2048:
        return KeyAlgorithm.RSA_2048
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        return KeyAlgorithm.ECDSA_P256
    if isinstance(public, ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    raise InvalidInput("unsupported key: use RSA-2048 (or larger), ECDSA P-256 or Ed25519")


def _public_bytes(public: object) -> bytes:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def shared_secret(data: bytes, key_id: str | None) -> KeyMaterial:
    """A plain-text shared secret (the whole file, without its trailing newline)."""
    secret = data.rstrip(b"\r\n")
    if not secret:
        raise InvalidInput("the key file is empty")
    return KeyMaterial(key_id or "", KeyAlgorithm.SHARED_SECRET, None, secret)


def glob_match(pattern: str, path: str) -> bool:
    return fnmatch.fnmatchcase(path, pattern)
