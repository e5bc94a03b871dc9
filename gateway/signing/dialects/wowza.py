"""Wowza Streaming Engine SecureToken v2.

hash = base64url-with-padding(SHA-256/384/512(contentPath + "?" +
"&".join(sorted([clientIP?, secret, <prefix>params…])))). Parameters carry a
configurable prefix (default ``wowzatoken``): ``starttime``, ``endtime``,
custom parameters and ``hash``. The content path is the application,
instance and stream (``vod/_definst_/mp4:sample.mp4``): the URL path without
its leading '/', or the request's prefix for a whole stream directory. The
gateway's key id travels in the custom parameter ``<prefix>gwkid``.

A file token and a directory token for the same content path would hash
alike, so a directory (stream) token carries the signed custom parameter
``<prefix>gwscope=prefix``: only such a token is tried against the request
path's parent directories; any other token must hash the request's own path.

The hash is checked with the profile's ``hash`` (default sha256) only.
``<prefix>starttime`` is hashed: it is returned as the issue time a link
revocation is compared with (the gateway signs start = issue time).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.signing.dialects._common import (
    append_query,
    check_window,
    epoch,
    query_pairs,
    same_text,
    shared_secret,
    signable_prefix,
    single,
    single_address,
    split_url,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified
from gateway.signing.paths import path_within

DEFAULT_PREFIX = "wowzatoken"
_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
SCOPE_PARAM = "gwscope"  # <prefix>gwscope=prefix: a stream (directory) token


def token_hash(content_path: str, params: list[str], secret: str, ip: str | None, algorithm: str) -> str:
    parts = sorted([*params, secret, *([ip] if ip else [])])
    text = f"{content_path}?{'&'.join(parts)}"
    return base64.urlsafe_b64encode(_HASHES[algorithm](text.encode()).digest()).decode()


class WowzaDialect:
    name = "wowza"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.SHARED_SECRET,),
        starts=True,
        ip="one exact address",
        prefix="stream (content path)",
        attribution_field="<prefix>gwkid custom parameter",
        revocation="one shared secret per application: change it (old URLs stop at once); "
        "the gateway's verifier refuses the principal's gwkid at once",
    )

    def describe(self) -> str:
        return "Wowza SecureToken v2: SHA-256/384/512 over sorted parameters; start, end, client IP"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """The plain shared secret from the application's SecureToken settings."""
        return shared_secret(data, key_id)

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        prefix = request.options.get("prefix", DEFAULT_PREFIX)
        algorithm = _algorithm(request.options)
        params = [f"{prefix}endtime={request.expires}"]
        params += [f"{prefix}starttime={request.starts}"] if request.starts is not None else []
        params += [f"{prefix}gwkid={request.attribution}"] if request.attribution else []
        params += [f"{prefix}{SCOPE_PARAM}=prefix"] if request.prefix is not None else []
        ip = single_address(request.ip, "Wowza") if request.ip else None
        content = _content_path(split_url(request.url).path, request.prefix)
        secret = key.require_secret().decode("utf-8", "replace")
        digest = token_hash(content, params, secret, ip, algorithm)
        query = "&".join([*sorted(params), f"{prefix}hash={digest}"])
        return Signed(url=append_query(request.url, query))

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # every <prefix> parameter, gwkid included, is hashed

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        prefix = redemption.options.get("prefix", DEFAULT_PREFIX)
        pairs = query_pairs(redemption.url)
        presented = single(pairs, f"{prefix}hash")
        params = [f"{n}={v}" for n, v in pairs if n.startswith(prefix) and n != f"{prefix}hash"]
        if presented is None or len({p.partition("=")[0] for p in params}) != len(params):
            raise VerificationFailed("malformed")
        values = dict(p.partition("=")[::2] for p in params)
        scope = values.get(f"{prefix}{SCOPE_PARAM}")
        if scope not in (None, "prefix"):
            raise VerificationFailed("malformed")
        contents = _content_paths(split_url(redemption.url).path, directory=scope == "prefix")
        algorithm = _algorithm(redemption.options)
        if not _any_matches(contents, params, key, redemption.client_ip, presented, algorithm):
            raise VerificationFailed("bad-signature-or-wrong-ip")
        expires = epoch(values.get(f"{prefix}endtime", ""))
        start_text = values.get(f"{prefix}starttime")
        starts = epoch(start_text) if start_text else None
        check_window(redemption.now, expires, starts)
        return Verified(key_id=None, expires=expires, attribution=values.get(f"{prefix}gwkid"), issued_at=starts)


def _algorithm(options: Mapping[str, str]) -> str:
    algorithm = options.get("hash", "sha256")
    if algorithm not in _HASHES:
        raise InvalidInput("Wowza hash is sha256, sha384 or sha512")
    return algorithm


def _content_path(path: str, prefix: str | None) -> str:
    if prefix is None:
        return path.strip("/")
    if not path_within(path, signable_prefix(prefix)):
        raise InvalidInput("the URL does not lie under the requested prefix")
    return prefix.strip("/")


def _content_paths(path: str, *, directory: bool) -> list[str]:
    """A file token hashes the request's own path; a stream token one of its parent directories."""
    if not directory:
        return [path.strip("/")]
    segments = path.split("/")[1:]
    return ["/".join(segments[:end]) for end in range(len(segments) - 1, 0, -1)]


def _any_matches(
    contents: list[str], params: list[str], key: KeyMaterial, ip: str | None, presented: str, algorithm: str
) -> bool:
    """Try each content path, without and with the client's address, with the profile's hash.

    A hash that matches without the address was not IP-bound; an IP-bound one
    matches only with the right address, so trying both is exact.
    """
    secret = key.require_secret().decode("utf-8", "replace")
    addresses = [None, ip] if ip else [None]
    for content in contents:
        for address in addresses:
            if same_text(token_hash(content, params, secret, address, algorithm), presented):
                return True
    return False
