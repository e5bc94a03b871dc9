"""Wowza Streaming Engine SecureToken v2.

hash = base64url-with-padding(SHA-256/384/512(contentPath + "?" +
"&".join(sorted([clientIP?, secret, <prefix>params…])))). Parameters carry a
configurable prefix (default ``wowzatoken``): ``starttime``, ``endtime``,
custom parameters and ``hash``. The content path is the application,
instance and stream (``vod/_definst_/mp4:sample.mp4``): the URL path without
its leading '/', or the request's prefix for a whole stream directory; the
verifier tries the path and its parent directories, as Wowza matches the
stream. The gateway's key id travels in the custom parameter ``<prefix>gwkid``.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import unquote, urlsplit

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
    single,
    single_address,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

DEFAULT_PREFIX = "wowzatoken"
_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


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
        algorithm = request.options.get("hash", "sha256")
        if algorithm not in _HASHES:
            raise InvalidInput("Wowza hash is sha256, sha384 or sha512")
        params = [f"{prefix}endtime={request.expires}"]
        params += [f"{prefix}starttime={request.starts}"] if request.starts is not None else []
        params += [f"{prefix}gwkid={request.attribution}"] if request.attribution else []
        ip = single_address(request.ip, "Wowza") if request.ip else None
        content = _content_path(urlsplit(request.url).path, request.prefix)
        secret = key.require_secret().decode("utf-8", "replace")
        digest = token_hash(content, params, secret, ip, algorithm)
        query = "&".join([*sorted(params), f"{prefix}hash={digest}"])
        return Signed(url=append_query(request.url, query))

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        prefix = redemption.options.get("prefix", DEFAULT_PREFIX)
        pairs = query_pairs(redemption.url)
        presented = single(pairs, f"{prefix}hash")
        params = [f"{n}={v}" for n, v in pairs if n.startswith(prefix) and n != f"{prefix}hash"]
        if presented is None or len({p.partition("=")[0] for p in params}) != len(params):
            raise VerificationFailed("malformed")
        values = dict(p.partition("=")[::2] for p in params)
        ip = redemption.client_ip
        if not _any_content_path_matches(redemption.url, params, key, ip, unquote(presented)):
            raise VerificationFailed("bad-signature-or-wrong-ip")
        expires = epoch(values.get(f"{prefix}endtime", ""))
        starts = values.get(f"{prefix}starttime")
        check_window(redemption.now, expires, epoch(starts) if starts else None)
        return Verified(key_id=None, expires=expires, attribution=values.get(f"{prefix}gwkid"))


def _content_path(path: str, prefix: str | None) -> str:
    chosen = prefix if prefix is not None else path
    if prefix is not None and not path.startswith(prefix):
        raise InvalidInput("the URL does not lie under the requested prefix")
    return chosen.strip("/")


def _any_content_path_matches(url: str, params: list[str], key: KeyMaterial, ip: str | None, presented: str) -> bool:
    """Try the path and its parents, without and with the client's address.

    A hash that matches without the address was not IP-bound; an IP-bound one
    matches only with the right address, so trying both is exact.
    """
    secret = key.require_secret().decode("utf-8", "replace")
    segments = urlsplit(url).path.strip("/").split("/")
    addresses = [None, ip] if ip else [None]
    for end in range(len(segments), 0, -1):
        content = "/".join(segments[:end])
        for algorithm in _HASHES:
            for address in addresses:
                if same_text(token_hash(content, params, secret, address, algorithm), presented):
                    return True
    return False
