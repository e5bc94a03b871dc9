"""Per-dialect signing throughput beside the raw primitive each dialect is built on.

The ratio (dialect / primitive) is what to watch: it says how much each format
spends on top of its cryptography, and is comparable across noisy machines.
Run: .venv/bin/python -m benchmarks.bench_dialects
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_der_private_key

from benchmarks._timing import rate
from gateway.signing.dialects.base import SignRequest
from tests.dialect_fixtures import ATTRIBUTION, Setup, setups

URL = "https://cdn.example.com/v/0f3a9c/720p/master.m3u8"
MESSAGE = b"x" * 160  # about the size of a string to sign


def _primitive(setup: Setup) -> tuple[str, object]:
    key = setup.key
    secret = key.secret or b""
    name = setup.name
    if name.startswith("cloudfront"):
        private = load_der_private_key(secret, None)
        if isinstance(private, ec.EllipticCurvePrivateKey):
            return "ECDSA P-256 sign", lambda: private.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        return "RSA-2048 sign (SHA-1)", lambda: private.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA1())  # type: ignore[union-attr]  # noqa: S303
    if name in ("native", "media-cdn-ed25519"):
        ed = Ed25519PrivateKey.from_private_bytes(secret)
        return "Ed25519 sign", lambda: ed.sign(MESSAGE)
    table = {
        "google-cdn": ("HMAC-SHA1", lambda: hmac.new(secret, MESSAGE, hashlib.sha1).digest()),
        "media-cdn-hmac": ("HMAC-SHA256", lambda: hmac.new(secret, MESSAGE, hashlib.sha256).digest()),
        "akamai": ("HMAC-SHA256", lambda: hmac.new(secret, MESSAGE, hashlib.sha256).digest()),
        "bunny": ("HMAC-SHA256", lambda: hmac.new(secret, MESSAGE, hashlib.sha256).digest()),
        "nginx": ("MD5", lambda: hashlib.md5(MESSAGE).digest()),  # noqa: S324
        "nimble": ("MD5", lambda: hashlib.md5(MESSAGE).digest()),  # noqa: S324
        "wowza": ("SHA-256", lambda: hashlib.sha256(MESSAGE).digest()),
    }
    return table[name]


def _request(setup: Setup) -> SignRequest:
    return SignRequest(
        url=URL,
        expires=1_900_000_000,
        ip="203.0.113.7" if setup.needs_ip else None,
        prefix="/v/0f3a9c/" if setup.sign_prefix else None,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION,
        issued_at=1_899_999_700,
        options=setup.options,
    )


def main() -> None:
    print(f"{'dialect':26} {'signs/s':>10} {'primitive':24} {'prim/s':>10} {'ratio':>6}")
    for setup in setups():
        request = _request(setup)
        signs = rate(lambda s=setup, r=request: s.dialect.sign(r, s.key))
        label, primitive = _primitive(setup)
        floor = rate(primitive)  # type: ignore[arg-type]
        print(f"{setup.name:26} {signs:10.0f} {label:24} {floor:10.0f} {signs / floor:6.2f}")


if __name__ == "__main__":
    main()
