"""One working key and signing setup per dialect, for property and interop tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.keys.material import KeyMaterial
from gateway.signing.dialects import default_registry
from gateway.signing.dialects.base import Dialect

VECTORS = Path(__file__).parent / "vectors"
_EC_PEM = ec.generate_private_key(ec.SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
ATTRIBUTION = "gwk_propertytestkid0000"


@dataclass(frozen=True)
class Setup:
    name: str
    dialect: Dialect
    key: KeyMaterial
    options: dict[str, str] = field(default_factory=dict)
    needs_ip: bool = False
    # Formats that sign the whole URL (host included) rather than its path.
    signs_host: bool = False
    # WMSAuth only covers the path through its signed stream prefix.
    sign_prefix: bool = False


def _load(dialect: str, data: bytes, key_id: str | None) -> KeyMaterial:
    return default_registry().get(dialect).load_key(data, key_id)


def setups() -> list[Setup]:
    registry = default_registry()
    ed_pem = (VECTORS / "native_ed25519_test_key.pem").read_bytes()
    return [
        Setup("native", registry.get("native"), _load("native", ed_pem, "gwk_nativeprop")),
        Setup("cloudfront-rsa", registry.get("cloudfront"),
              _load("cloudfront", (VECTORS / "cloudfront_test_key.pem").read_bytes(), "K2JCJMDEHXQW5F"),
              signs_host=True),
        Setup("cloudfront-ecdsa-sha256", registry.get("cloudfront"), _load("cloudfront", _EC_PEM, "K3ECDSAEXAMPLE"),
              options={"hash_algorithm": "SHA256"}, signs_host=True),
        Setup("google-cdn", registry.get("google-cdn"), _load("google-cdn", b"nZtRohdNF9m3cKM24IcK4w==", "my-key"),
              signs_host=True),
        Setup("media-cdn-ed25519", registry.get("media-cdn"),
              _load("media-cdn", b"DJUcnLguVFKmVCFnWGubG1MZg7fWAnxacMjKDhVZMGI=", None)),
        Setup("media-cdn-hmac", registry.get("media-cdn"),
              _load("media-cdn", b"g_SlMILiIWKqsC6Z2L7gy0sReDOqtSrJrE7CXNr5Nl8=", "hmac")),
        Setup("akamai", registry.get("akamai"), _load("akamai", b"eee7e9157f81b2f6d471bf2c", None)),
        Setup("nginx", registry.get("nginx"), _load("nginx", b"s3cr3t", None),
              options={"expression": "$secure_link_expires$uri$remote_addr$arg_gw_kid $secret"}, needs_ip=True),
        Setup("wowza", registry.get("wowza"), _load("wowza", b"mySharedSecret", None)),
        Setup("nimble", registry.get("nimble"), _load("nimble", b"defaultpassword", None), needs_ip=True,
              sign_prefix=True),
        Setup("bunny", registry.get("bunny"), _load("bunny", b"SecurityKey", None)),
    ]  # fmt: skip
