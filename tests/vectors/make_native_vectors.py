"""Regenerate native.json from docs/native-format.md (GW2), independently of gateway/.

The string to sign is written out by hand from the spec and signed with the
raw primitives, so the vectors check the gateway's implementation rather than
echo it. Path tokens (``"path_token": true``) put the same parameters, base64url-encoded,
into a ``/_t/<token>`` segment in front of the path.
Run: python tests/vectors/make_native_vectors.py > tests/vectors/native.json
"""

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ED_SEED = bytes(range(32))
HMAC_KEY = bytes.fromhex("0b" * 32)
ED_KID = "gwk_testvectored25519"
HS_KID = "gwk_testvectorhmac256"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(alg: str, message: str) -> str:
    data = message.encode()
    if alg == "ed25519":
        return b64(Ed25519PrivateKey.from_private_bytes(ED_SEED).sign(data))
    return b64(hmac.new(HMAC_KEY, data, hashlib.sha256).digest())


CASES = [
    # name, alg, input, canonical path/scope, canonical query, url query prefix, gw params before kid
    (
        "path-only",
        "ed25519",
        {"url": "https://cdn.example.com/v/abc/master.m3u8", "expires": 1800000300, "issued_at": 1800000000},
        "path:/v/abc/master.m3u8",
        "",
        "",
        [("gw_exp", "1800000300"), ("gw_iat", "1800000000")],
    ),
    (
        # path-only issued 100 s later: only gw_iat differs, and with it the signature.
        "issued-later",
        "ed25519",
        {"url": "https://cdn.example.com/v/abc/master.m3u8", "expires": 1800000300, "issued_at": 1800000100},
        "path:/v/abc/master.m3u8",
        "",
        "",
        [("gw_exp", "1800000300"), ("gw_iat", "1800000100")],
    ),
    (
        "all-claims-ipv4",
        "ed25519",
        {
            "url": "https://cdn.example.com/v/abc/master.m3u8",
            "expires": 1800000300,
            "issued_at": 1799999990,
            "starts": 1800000000,
            "ip": "203.0.113.7/24",
        },
        "path:/v/abc/master.m3u8",
        "",
        "",
        [
            ("gw_exp", "1800000300"),
            ("gw_iat", "1799999990"),
            ("gw_nbf", "1800000000"),
            ("gw_ip", "203.0.113.0/24"),
        ],
    ),
    (
        "prefix-ipv6",
        "ed25519",
        {
            "url": "https://cdn.example.com/v/abc/master.m3u8",
            "expires": 1800000300,
            "issued_at": 1800000000,
            "ip": "2001:db8:1234::1/48",
            "prefix": "/v/abc/",
        },
        "prefix:/v/abc/",
        "",
        "",
        [("gw_exp", "1800000300"), ("gw_iat", "1800000000"), ("gw_ip", "2001:db8:1234::/48"), ("gw_pfx", "/v/abc/")],
    ),
    (
        "query-sorted-and-escapes-normalised",
        "ed25519",
        {
            "url": "https://cdn.example.com/v/a%7eb/f%c3%a9.mp4?z=1&a=%2f&a=0",
            "expires": 1800000300,
            "issued_at": 1800000000,
        },
        "path:/v/a~b/f%C3%A9.mp4",
        "a=%2F&a=0&z=1",
        "z=1&a=%2f&a=0&",
        [("gw_exp", "1800000300"), ("gw_iat", "1800000000")],
    ),
    (
        "hmac-sha256",
        "hmac-sha256",
        {"url": "https://cdn.example.com/t/abc.jpg", "expires": 1800000060, "issued_at": 1800000000},
        "path:/t/abc.jpg",
        "",
        "",
        [("gw_exp", "1800000060"), ("gw_iat", "1800000000")],
    ),
    (
        # Every claim, a prefix with '&' (percent-encoded inside the token as in the query), HMAC.
        "path-token-all-claims-hmac",
        "hmac-sha256",
        {
            "url": "https://cdn.example.com/v/a&b/720p/seg-001.ts?session=9",
            "expires": 1800000300,
            "issued_at": 1799999990,
            "starts": 1800000000,
            "ip": "203.0.113.7/24",
            "prefix": "/v/a&b/",
            "path_token": True,
        },
        "prefix:/v/a&b/",
        "",
        "session=9",
        [
            ("gw_exp", "1800000300"),
            ("gw_iat", "1799999990"),
            ("gw_nbf", "1800000000"),
            ("gw_ip", "203.0.113.0/24"),
            ("gw_pfx", "/v/a%26b/"),
        ],
    ),
]


# prefix-ipv6 as a path token: the same string to sign, so the same signature, in another place.
[_PREFIX_IPV6] = [case for case in CASES if case[0] == "prefix-ipv6"]
CASES.insert(
    CASES.index(_PREFIX_IPV6) + 3,
    ("path-token-ipv6", "ed25519", {**_PREFIX_IPV6[2], "path_token": True}, *_PREFIX_IPV6[3:]),
)


def vector(name, alg, inp, scope, query, url_query, params):
    kid = ED_KID if alg == "ed25519" else HS_KID
    fields = {k: v for k, v in params}
    message = "\n".join(
        [
            "GW2",
            alg,
            kid,
            fields["gw_iat"],
            fields["gw_exp"],
            fields.get("gw_nbf", ""),
            fields.get("gw_ip", ""),
            scope,
            query,
        ]
    )
    sig = sign(alg, message)
    # The signer writes the canonical path into the URL (the verifier accepts no other spelling).
    path = scope.removeprefix("path:") if scope.startswith("path:") else inp["url"].split("://", 1)[1]
    path = path[path.index("/") :].split("?")[0]
    gw_params = "&".join(f"{k}={v}" for k, v in params) + f"&gw_kid={kid}&gw_sig={sig}"
    found = {"name": name, "algorithm": alg, "kid": kid, "input": inp, "string_to_sign": message}
    if inp.get("path_token"):
        # The token segment: the very parameter text the query form would carry, base64url without padding.
        segment = b64(gw_params.encode())
        query_str = f"?{url_query}" if url_query else ""
        return {
            **found,
            "token_text": gw_params,
            "signed_url": f"https://cdn.example.com/_t/{segment}{path}{query_str}",
        }
    return {**found, "signed_url": f"https://cdn.example.com{path}?{url_query}{gw_params}"}


print(
    json.dumps(
        {
            "source": "docs/native-format.md (GW2); generated by tests/vectors/make_native_vectors.py",
            "keys": {"ed25519_seed_hex": ED_SEED.hex(), "hmac_sha256_key_hex": HMAC_KEY.hex()},
            "vectors": [vector(*case) for case in CASES],
        },
        indent=2,
    )
)
