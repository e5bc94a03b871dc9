"""AWS CloudFront signed URLs and signed cookies.

Canned policy when only expiry is restricted; custom policy (start time, one
IPv4 CIDR, a wildcard resource) otherwise. RSA (PKCS#1 v1.5) or ECDSA P-256
(DER), SHA-1 by default or SHA-256 (``Hash-Algorithm=SHA256``), CloudFront's
base64 alphabet (``+=/`` -> ``-_~``). The policy resource is built apart from
the URL being signed, so a wildcard ``?`` never changes how the query string
is appended (botocore #3377).

Verification accepts exactly what CloudFront documents: no ``Hash-Algorithm``
(SHA-1) or ``Hash-Algorithm=SHA256``. A custom policy's ``DateGreaterThan``
is signed, so it is returned as the issue time (``Verified.issued_at``) a link
revocation is compared with; the gateway always signs one (start = issue
time), so its URLs always carry a custom policy. A canned policy has none. A custom policy's ``Resource`` is
matched with its wildcards kept inside the part of the URL they stand in
(``resource_match``); the gateway never signs a resource whose path holds a
``*`` or ``?``, since that would widen it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_der_public_key

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.netaddr import parse_network
from gateway.signing.dialects._common import (
    append_query,
    check_ip_in,
    check_window,
    directory_prefix,
    epoch,
    load_pem_key,
    query_pairs,
    required,
    resource_match,
    single,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified
from gateway.signing.paths import origin_and_path
from gateway.strictjson import StrictJSONError
from gateway.strictjson import loads as strict_loads

_SIGNATURE_PARAMS = ("Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256}
# The Hash-Algorithm values CloudFront documents: absent (SHA-1) or exactly "SHA256".
_PRESENTED_HASHES = {None: "SHA1", "SHA256": "SHA256"}


def cf_b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").translate(str.maketrans("+=/", "-_~"))


def cf_b64decode(text: str) -> bytes:
    """Strict and canonical: a second spelling of the same bytes is refused."""
    try:
        raw = base64.b64decode(text.translate(str.maketrans("-_~", "+=/")), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed("malformed") from None
    if cf_b64encode(raw) != text:
        raise VerificationFailed("malformed")
    return raw


def canned_policy(resource: str, expires: int) -> str:
    statement = {"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}
    return _json({"Statement": [statement]})


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def custom_policy(resource: str, expires: int, starts: int | None, ip: str | None) -> str:
    condition: dict[str, Any] = {"DateLessThan": {"AWS:EpochTime": expires}}
    if ip is not None:
        condition["IpAddress"] = {"AWS:SourceIp": ip}
    if starts is not None:
        condition["DateGreaterThan"] = {"AWS:EpochTime": starts}
    statement = {"Resource": resource, "Condition": condition}
    return _json({"Statement": [statement]})


@functools.lru_cache(maxsize=256)
def _private_key(der: bytes) -> PrivateKeyTypes:
    """Parsed once: loading an RSA key checks its primes and costs more than signing."""
    return load_der_private_key(der, None)


@functools.lru_cache(maxsize=256)
def _public_key(der: bytes) -> PublicKeyTypes:
    return load_der_public_key(der)


def _sign_bytes(key: KeyMaterial, message: bytes, hash_name: str) -> bytes:
    private = _private_key(key.require_secret())
    algorithm = _HASHES[hash_name]()
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(message, padding.PKCS1v15(), algorithm)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(message, ec.ECDSA(algorithm))
    raise InvalidInput("CloudFront keys are RSA-2048 or ECDSA P-256")


def _verify_bytes(key: KeyMaterial, message: bytes, signature: bytes, hash_name: str) -> bool:
    if key.public is None:
        return False
    public = _public_key(key.public)
    algorithm = _HASHES[hash_name]()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _hash_name(options: dict[str, str] | Any) -> str:
    name = str(options.get("hash_algorithm", "SHA1")).upper().replace("-", "")
    if name not in _HASHES:
        raise InvalidInput("CloudFront hash_algorithm is SHA1 or SHA256")
    return name


def _ipv4_cidr(ip: str) -> str:
    network = parse_network(ip)
    if network.version != 4:
        raise InvalidInput("CloudFront policies take one IPv4 address or CIDR; IPv6 is not supported")
    return str(network)


class CloudFrontDialect:
    name = "cloudfront"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.RSA_2048, KeyAlgorithm.ECDSA_P256),
        starts=True,
        ip="one IPv4 CIDR",
        prefix="wildcard resource (custom policy)",
        cookie=True,
        key_id_field="Key-Pair-Id",
        revocation="remove the public key from the key group (propagates in minutes); "
        "the gateway's verifier refuses at once",
    )

    def describe(self) -> str:
        return "AWS CloudFront: canned/custom policy, RSA-2048 or ECDSA P-256, SHA-1 or SHA-256"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """PEM private key (to sign) or public key (to verify); --key-id is the Key-Pair-Id."""
        if not key_id:
            raise InvalidInput("CloudFront needs --key-id (the Key-Pair-Id)")
        key = load_pem_key(data, key_id)
        if key.algorithm not in self.capabilities.key_types:
            raise InvalidInput("CloudFront keys are RSA-2048 or ECDSA P-256")
        return key

    def _policy(self, request: SignRequest) -> tuple[str, bool]:
        resource = request.options.get("policy_resource")
        if request.prefix is not None:
            resource = _prefix_resource(request.url, request.prefix)
        ip = _ipv4_cidr(request.ip) if request.ip else None
        if resource is None and request.starts is None and ip is None:
            return canned_policy(request.url, request.expires), True
        if resource is None:
            resource = _no_wildcards(request.url)
        return custom_policy(resource, request.expires, request.starts, ip), False

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        if any(name in _SIGNATURE_PARAMS for name, _ in query_pairs(request.url)):
            raise InvalidInput("the URL already has a CloudFront signature parameter")
        hash_name = _hash_name(request.options)
        policy, canned = self._policy(request)
        signature = cf_b64encode(_sign_bytes(key, policy.encode(), hash_name))
        first = ("Expires", str(request.expires)) if canned else ("Policy", cf_b64encode(policy.encode()))
        fields = [first, ("Signature", signature), ("Key-Pair-Id", key.kid)]
        if hash_name == "SHA256":
            fields.append(("Hash-Algorithm", "SHA256"))
        url = append_query(request.url, "&".join(f"{n}={v}" for n, v in fields))
        cookies = {f"CloudFront-{n}": v for n, v in fields}
        return Signed(url=url, cookies=cookies)

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return _fields(redemption)["Key-Pair-Id"]

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # Key-Pair-Id picks the verifying public key

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        fields = _fields(redemption)
        if fields["Key-Pair-Id"] != key.kid:
            raise VerificationFailed("unknown-key")
        resource = _strip_signature(redemption.url)
        canned = "Policy" not in fields
        if canned:
            policy = canned_policy(resource, epoch(fields["Expires"]))
        else:
            policy = cf_b64decode(fields["Policy"]).decode("utf-8", "replace")
        hash_name = _PRESENTED_HASHES.get(fields.get("Hash-Algorithm"))
        if hash_name is None:
            raise VerificationFailed("malformed")
        signature = cf_b64decode(fields["Signature"])
        if not _verify_bytes(key, policy.encode(), signature, hash_name):
            raise VerificationFailed("bad-signature", signed=policy)
        # A canned policy was rebuilt from this very URL: its resource matches by construction.
        expires, starts = _check_policy(policy, None if canned else resource, redemption)
        return Verified(key_id=fields["Key-Pair-Id"], expires=expires, issued_at=starts)


def _prefix_resource(url: str, prefix: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return _no_wildcards(f"{scheme}://{host}{directory_prefix(prefix)}") + "*"


def _no_wildcards(resource: str) -> str:
    """A literal resource: a '*' or '?' in its path would be read as a wildcard and widen it."""
    _, path = origin_and_path(resource)
    if "*" in path or "?" in path:
        raise InvalidInput("a CloudFront resource path cannot contain '*' or '?' (they are wildcards)")
    return resource


def _fields(redemption: Redemption) -> dict[str, str]:
    pairs = query_pairs(redemption.url)
    if single(pairs, "Signature") is not None:
        names = ["Signature", "Key-Pair-Id", "Expires", "Policy", "Hash-Algorithm"]
        found = {n: single(pairs, n) for n in names}
    else:
        found = {n: redemption.cookies.get(f"CloudFront-{n}") for n in _SIGNATURE_PARAMS}
    fields = {n: v for n, v in found.items() if v is not None}
    required(list(fields.items()), "Signature")
    required(list(fields.items()), "Key-Pair-Id")
    if ("Expires" in fields) == ("Policy" in fields):
        raise VerificationFailed("malformed")
    return fields


def _strip_signature(url: str) -> str:
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and p.partition("=")[0] not in _SIGNATURE_PARAMS]
    return f"{base}?{'&'.join(kept)}" if kept else base


def _check_policy(policy_text: str, resource: str | None, redemption: Redemption) -> tuple[int, int | None]:
    """(expiry, start) of a verified policy, once its conditions hold for this request."""
    try:
        [statement] = strict_loads(policy_text)["Statement"]
        condition = statement["Condition"]
        expires = int(condition["DateLessThan"]["AWS:EpochTime"])
        starts = condition.get("DateGreaterThan", {}).get("AWS:EpochTime")
        starts = None if starts is None else int(starts)
        source_ip = condition.get("IpAddress", {}).get("AWS:SourceIp")
        pattern = statement.get("Resource")
    except (StrictJSONError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        raise VerificationFailed("malformed") from None
    check_window(redemption.now, expires, starts)
    if resource is not None and pattern is not None and not resource_match(str(pattern), resource):
        raise VerificationFailed("outside-prefix")
    if source_ip is not None:
        check_ip_in([str(source_ip)], redemption.client_ip)
    return expires, starts
