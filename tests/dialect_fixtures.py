"""One working key and signing setup per dialect, for property and interop tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.config import load_config
from gateway.errors import VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm, Permission, Visibility
from gateway.services import open_services
from gateway.signing.dialects import default_registry
from gateway.signing.dialects.base import Dialect, Redemption, SignRequest
from tests.support import ADMIN, T0, Clock, World, copy_tree, private_temp_dir

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
              needs_ip=True),  # the default expression
        Setup("wowza", registry.get("wowza"), _load("wowza", b"mySharedSecret", None)),
        Setup("nimble", registry.get("nimble"), _load("nimble", b"defaultpassword", None), needs_ip=True,
              sign_prefix=True),
        Setup("bunny", registry.get("bunny"), _load("bunny", b"SecurityKey", None)),
        Setup("bunny-directory", registry.get("bunny"), _load("bunny", b"SecurityKey", None),
              options={"directory": "true"}),
    ]  # fmt: skip


# --- A deployment with every dialect as a profile (live-app and real-nginx security tests) -------

DEPLOYMENT_PROFILES = """
[profiles.cf]
dialect = "cloudfront"
base_url = "https://d111111abcdef8.cloudfront.net"
options = { hash_algorithm = "SHA256" }

[profiles.gcdn]
dialect = "google-cdn"
base_url = "https://gcdn.example.com"

[profiles.mcdn]
dialect = "media-cdn"
base_url = "https://mcdn.example.com"
secret_file = "keys/profiles/mcdn.key"

[profiles.akamai]
dialect = "akamai"
base_url = "https://media.example.com"
secret_file = "keys/profiles/akamai.hex"

[profiles.bunny]
dialect = "bunny"
base_url = "https://zone.b-cdn.net"
secret_file = "keys/profiles/bunny.key"

[profiles.bunnydir]
dialect = "bunny"
base_url = "https://zone.b-cdn.net"
secret_file = "keys/profiles/bunny.key"
options = { directory = "true" }

[profiles.wowza]
dialect = "wowza"
base_url = "https://wowza.example.com"
secret_file = "keys/profiles/wowza.key"

[profiles.nginx]
dialect = "nginx"
base_url = "https://nginx.example.com"
secret_file = "keys/profiles/nginx.key"

[profiles.nimble]
dialect = "nimble"
base_url = "https://live.example.com"
secret_file = "keys/profiles/nimble.key"
unattributable = true
"""
DEPLOYED = ("native", "cf", "gcdn", "mcdn", "akamai", "bunny", "bunnydir", "wowza", "nginx", "nimble")
# The profiles that sign a prefix (HLS/DASH) token.
PREFIX_PROFILES = ("native", "cf", "gcdn", "mcdn", "akamai", "bunny", "bunnydir", "wowza")
_SECRETS = {
    "mcdn.key": "DJUcnLguVFKmVCFnWGubG1MZg7fWAnxacMjKDhVZMGI=\n",
    "akamai.hex": "eee7e9157f81b2f6d471bf2c\n",
    "bunny.key": "SecurityKey\n",
    "wowza.key": "mySharedSecret\n",
    "nginx.key": "s3cr3t\n",
    "nimble.key": "defaultpassword\n",
}


def install_profiles(data_dir: Path, verify: tuple[str, ...] = DEPLOYED, extra: str = "") -> None:
    """Write every dialect's profile (and secret) into an initialised data directory."""
    (data_dir / "keys" / "profiles").mkdir(exist_ok=True)
    for name, text in _SECRETS.items():
        (data_dir / "keys" / "profiles" / name).write_text(text)
        (data_dir / "keys" / "profiles" / name).chmod(0o600)  # a shared secret readable by others is refused
    listed = ", ".join(f'"{name}"' for name in verify)
    with (data_dir / "gateway.toml").open("a") as config:
        config.write(DEPLOYMENT_PROFILES + extra + f"\n[verify]\nprofiles = [{listed}]\n")


MEDIA_PATH = "/v/a/master.m3u8"  # item "a" (unlisted); item "other" is private to alice


@dataclass(frozen=True)
class _Template:
    files: Path
    seeds: dict[str, tuple[str, bytes]]


_templates: dict[tuple[tuple[str, ...], str], _Template] = {}


async def open_deployment(data_dir: Path, clock: Clock, verify: tuple[str, ...] = DEPLOYED) -> World:
    """Every profile configured, a signing principal 'web' with a key for each keyed CDN, two media items.

    ``data_dir`` is an initialised data directory (``tests.support.init_data_dir``). Built once per test
    process and copied (an RSA key alone takes 50 ms to make) when the clock stands at T0, as it does
    for a fresh ``clock`` fixture. The caller closes ``world.services``.
    """
    if clock() != T0:
        return await _build_deployment(data_dir, clock, verify)
    made_for = (verify, (data_dir / "gateway.toml").read_text())  # a test may have configured more
    if made_for not in _templates:
        files = private_temp_dir("gateway-deployment-template-")
        copy_tree(data_dir, files)
        world = await _build_deployment(files, Clock(T0), verify)
        await world.services.close()
        _templates[made_for] = _Template(files, dict(world.seeds))
    template = _templates[made_for]
    copy_tree(template.files, data_dir)
    services = await open_services(load_config(data_dir, environ={}), clock=clock)
    return World(services, clock, dict(template.seeds))


async def _build_deployment(data_dir: Path, clock: Clock, verify: tuple[str, ...]) -> World:
    install_profiles(data_dir, verify)
    services = await open_services(load_config(data_dir, environ={}), clock=clock)
    world = World(services, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    admin = services.admin
    await admin.create_key(ADMIN, "web", KeyAlgorithm.RSA_2048, clock(), external_id="K2JCJMDEHXQW5F")
    await admin.create_key(ADMIN, "web", KeyAlgorithm.HMAC_SHA1, clock(), external_id="my-key")
    await world.media("a", visibility=Visibility.UNLISTED)
    await world.media("other", owner="alice", visibility=Visibility.PRIVATE)
    return world


def origin_form(url: str) -> str:
    """What nginx sends as $request_uri: the URL without scheme and host."""
    return re.sub(r"^[a-z]+://[^/]*", "", url)


# A signed URL put to one dialect's verifier alone, as the attack tests in tests/security/ do.
ATTACK_NOW = 1_800_000_000
ATTACK_CLIENT = "203.0.113.7"


def attack_url(setup: Setup, path: str = "/v/abc/master.m3u8", prefix: str | None = None) -> str:
    """``setup``'s signed URL for ``path`` (a prefix token over ``path`` where the format signs prefixes)."""
    request = SignRequest(
        url=f"https://cdn.example.com{path}", expires=ATTACK_NOW + 300, ip=ATTACK_CLIENT if setup.needs_ip else None,
        prefix=prefix if prefix is not None else (path if setup.sign_prefix else None), issued_at=ATTACK_NOW,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION, options=setup.options,
    )  # fmt: skip
    return setup.dialect.sign(request, setup.key).url


def verdict(setup: Setup, url: str, cookies: dict[str, str] | None = None) -> str:
    """``accepted``, or the reason ``setup``'s verifier refuses ``url`` (``unknown-key`` for another key's id)."""
    redemption = Redemption(url, ATTACK_NOW + 30, ATTACK_CLIENT, cookies or {}, setup.options)
    try:
        presented = setup.dialect.presented_key_id(redemption)
        if presented is not None and presented != setup.key.kid:
            return "unknown-key"
        setup.dialect.verify(redemption, setup.key)
    except VerificationFailed as refused:
        return refused.reason
    return "accepted"
