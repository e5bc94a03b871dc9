"""Amazon S3 presigned URLs (Signature Version 4 in the query string), for an origin without a CDN.

A GET URL for one object, signed with an IAM access key the profile holds:

    https://BUCKET.s3.REGION.amazonaws.com/KEY?gw_kid=gwk_…&X-Amz-Algorithm=AWS4-HMAC-SHA256
      &X-Amz-Credential=AKID%2FYYYYMMDD%2FREGION%2Fs3%2Faws4_request&X-Amz-Date=YYYYMMDDTHHMMSSZ
      &X-Amz-Expires=SECONDS&X-Amz-SignedHeaders=host&X-Amz-Signature=HEX

``X-Amz-Signature`` is HMAC-SHA256, under a key derived from the secret,
date, region and service, of a string that hashes the canonical request:
``GET``, the path, every other query parameter (sorted, RFC 3986 encoded),
``host:HOST``, ``host`` and ``UNSIGNED-PAYLOAD``
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html).
The URLs are byte for byte what boto3's ``generate_presigned_url`` writes
(the tests compare them), but the time is an argument here, as in every
dialect: the URL is valid from ``X-Amz-Date`` (the issue time, signed) for
``X-Amz-Expires`` seconds, at most 7 days.

Attribution: S3 signs every query parameter, so the principal's gateway key
id travels as ``gw_kid`` (S3 ignores it). Revocation: S3 checks the
signature itself and knows nothing of gateway keys; a URL opens the object
there until it expires, unless the IAM access key is deactivated (which ends
every URL signed with it). Where a proxy asks ``/v1/verify`` before passing
the request to S3, the gateway refuses a revoked key's URLs at once.

Paths are signed as S3 reads them: each byte but unreserved characters and
``/`` percent-encoded, once. A path spelled otherwise (``:``, ``@``, ``+``
unescaped) is refused, so the path signed is the path every parser reads.
Option: ``region`` (default ``us-east-1``).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from urllib.parse import SplitResult, quote, unquote

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.signing.dialects._common import check_window, decimal, same_text, split_url, unsupported
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

ALGORITHM = "AWS4-HMAC-SHA256"
ATTRIBUTION_ARG = "gw_kid"
MAX_EXPIRES = 7 * 86400  # SigV4 presigned URLs live at most a week
_SERVICE = "s3"
_TERMINATOR = "aws4_request"
_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def encode(text: str) -> str:
    """RFC 3986 encoding, as SigV4 writes query names and values: only unreserved characters stay."""
    return quote(text, safe="-_.~")


def object_path(path: str) -> str:
    """The path as S3 signs it; InvalidInput when it is spelled any other way."""
    expected = quote(unquote(path), safe="/-_.~")
    if path != expected:
        raise InvalidInput(f"S3 signs object paths percent-encoded once, except unreserved characters: {expected}")
    return path


def amz_date(epoch: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _parse_amz_date(text: str) -> int:
    if not _AMZ_DATE.fullmatch(text):
        raise VerificationFailed("malformed")
    try:
        epoch = calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise VerificationFailed("malformed") from None
    if amz_date(epoch) != text:  # 20260231: strptime would not refuse every impossible date
        raise VerificationFailed("malformed")
    return epoch


def _host(parts: SplitResult) -> str:
    """The Host header a client sends for this URL: what the signature covers."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("the URL's port is not a number") from None
    return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signature(secret: str, date: str, region: str, path: str, params: list[tuple[str, str]], host: str) -> str:
    """X-Amz-Signature for a GET of ``path`` on ``host`` with ``params`` (every query parameter but the signature)."""
    query = "&".join(f"{n}={v}" for n, v in sorted((encode(n), encode(v)) for n, v in params))
    request = "\n".join(["GET", path, query, f"host:{host}", "", "host", _UNSIGNED_PAYLOAD])
    scope = f"{date[:8]}/{region}/{_SERVICE}/{_TERMINATOR}"
    to_sign = "\n".join([ALGORITHM, date, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()])
    key = _hmac(("AWS4" + secret).encode("utf-8"), date[:8])
    for part in (region, _SERVICE, _TERMINATOR):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _region(options: Mapping[str, str]) -> str:
    region = options.get("region", "us-east-1")
    if not re.fullmatch(r"[a-z0-9-]{1,32}", region):
        raise InvalidInput(f"S3 option region must be an AWS region name, got {region!r}")
    return region


class S3Dialect:
    name = "s3"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.SHARED_SECRET,),
        starts=True,  # X-Amz-Date: the signed issue time, before which S3 refuses the URL
        attribution_field="gw_kid query parameter (SigV4 signs every parameter)",
        revocation="S3 checks the signature itself: a URL opens the object until X-Amz-Expires unless the IAM "
        "access key is deactivated (ending every URL signed with it); a proxy asking the gateway's verifier "
        "first refuses a revoked gw_kid at once",
    )

    def describe(self) -> str:
        return "Amazon S3 presigned GET URLs (SigV4 query string): start (X-Amz-Date), expiry up to 7 days"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """An IAM access key as JSON: the output of ``aws iam create-access-key``, or its ``AccessKey`` object
        (``AccessKeyId`` and ``SecretAccessKey``)."""
        try:
            found = json.loads(data)
            found = found.get("AccessKey", found)
            access_key, secret = str(found["AccessKeyId"]), str(found["SecretAccessKey"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidInput(
                "the key file is not an IAM access key (JSON with AccessKeyId, SecretAccessKey)"
            ) from None
        if key_id and key_id != access_key:
            raise InvalidInput(f"the key file holds access key {access_key}, not {key_id}")
        return KeyMaterial(access_key, KeyAlgorithm.SHARED_SECRET, None, secret.encode("utf-8"))

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # every query parameter, gw_kid included, is signed

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # a presigned URL is for exactly one object

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        if request.ip is not None:
            raise unsupported("S3", "client IP (S3 presigned URLs cannot; use a bucket policy)")
        if request.prefix is not None:
            raise unsupported("S3", "path prefix (a presigned URL opens one object)")
        parts = split_url(request.url)
        if parts.query:
            raise InvalidInput("the S3 format signs object URLs without a query")
        date = request.starts if request.starts is not None else request.issued_at
        if date is None:
            raise InvalidInput("an S3 presigned URL needs its issue time")
        expires_in = request.expires - date
        if not 1 <= expires_in <= MAX_EXPIRES:
            raise InvalidInput(f"an S3 presigned URL lives 1 second to 7 days, not {expires_in} seconds")
        path, stamp = object_path(parts.path), amz_date(date)
        params = [(ATTRIBUTION_ARG, request.attribution)] if request.attribution else []
        params += _auth_params(key.kid, stamp, _region(request.options), expires_in)
        secret = key.require_secret().decode("utf-8")
        signed = signature(secret, stamp, _region(request.options), path, params, _host(parts))
        query = "&".join(f"{encode(n)}={encode(v)}" for n, v in params)
        return Signed(url=f"{parts.scheme}://{parts.netloc}{path}?{query}&X-Amz-Signature={signed}")

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        parts = split_url(redemption.url)
        params = _presented(parts.query)
        presented = params.pop("X-Amz-Signature", "")
        if not _HEX_SIGNATURE.fullmatch(presented):
            raise VerificationFailed("malformed")
        issued, expires_in = _check_auth_params(params, key, _region(redemption.options))
        try:
            path, host = object_path(parts.path), _host(parts)
        except InvalidInput:
            raise VerificationFailed("malformed") from None
        secret = key.require_secret().decode("utf-8")
        expected = signature(
            secret, params["X-Amz-Date"], _region(redemption.options), path, list(params.items()), host
        )
        if not same_text(expected, presented):
            raise VerificationFailed("bad-signature")
        check_window(redemption.now, issued + expires_in, issued)
        return Verified(
            key_id=None, expires=issued + expires_in, attribution=params.get(ATTRIBUTION_ARG), issued_at=issued
        )


def _auth_params(access_key: str, stamp: str, region: str, expires_in: int) -> list[tuple[str, str]]:
    """The parameters SigV4 adds, in the order boto3 writes them."""
    return [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{stamp[:8]}/{region}/{_SERVICE}/{_TERMINATOR}"),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(expires_in)),
        ("X-Amz-SignedHeaders", "host"),
    ]


def _presented(query: str) -> dict[str, str]:
    """Query parameters, each in the one spelling the signer writes, none repeated."""
    params: dict[str, str] = {}
    for part in query.split("&") if query else []:
        raw_name, _, raw_value = part.partition("=")
        name, value = unquote(raw_name), unquote(raw_value)
        if encode(name) != raw_name or encode(value) != raw_value or name in params:
            raise VerificationFailed("malformed")
        params[name] = value
    return params


def _check_auth_params(params: dict[str, str], key: KeyMaterial, region: str) -> tuple[int, int]:
    """The issue time and lifetime the URL signs, after checking what SigV4 requires of it."""
    if params.get("X-Amz-Algorithm") != ALGORITHM or params.get("X-Amz-SignedHeaders") != "host":
        raise VerificationFailed("malformed")
    if "X-Amz-Security-Token" in params:  # temporary credentials: never what the gateway signs with
        raise VerificationFailed("unknown-key")
    issued = _parse_amz_date(params.get("X-Amz-Date", ""))
    expires_in = decimal(params.get("X-Amz-Expires", ""), max_digits=6)
    if not 1 <= expires_in <= MAX_EXPIRES:
        raise VerificationFailed("malformed")
    scope = params.get("X-Amz-Credential", "").split("/")
    if len(scope) != 5 or not same_text(key.kid, scope[0]):
        raise VerificationFailed("unknown-key")
    if scope[1:] != [params["X-Amz-Date"][:8], region, _SERVICE, _TERMINATOR]:
        raise VerificationFailed("wrong-scope")
    return issued, expires_in
