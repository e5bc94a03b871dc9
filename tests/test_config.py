from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import DEV_IDP_ISSUER, load_config
from gateway.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert config.port == 8080 and config.max_ttl == 3600 and not config.production
    assert config.master_key_path == tmp_path / "keys" / "master.key"


def test_connection_bounds_default_safe_and_come_from_the_file_and_environment(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    bounds = ("header_timeout", "body_timeout", "keepalive_timeout", "send_timeout", "max_connections")
    assert tuple(getattr(config, name) for name in bounds) == (10.0, 30.0, 15.0, 30.0, 0)
    _write(tmp_path, "[server]\nheader_timeout = 5\nbody_timeout = 20\nsend_timeout = 7\nmax_connections = 500\n")
    config = load_config(tmp_path, environ={"GATEWAY_SERVER_KEEPALIVE_TIMEOUT": "2.5"})
    assert tuple(getattr(config, name) for name in bounds) == (5.0, 20.0, 2.5, 7.0, 500)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    _write(tmp_path, "[server]\nport = 9000\n[proxy]\ntrusted = ['10.0.0.0/8']\n")
    config = load_config(tmp_path, environ={"GATEWAY_SERVER_PORT": "9100", "GATEWAY_PROXY_TRUSTED": "10.0.0.0/8,::1"})
    assert config.port == 9100
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("text", "env", "names"),
    [
        ("[server]\nport = 'x'\n", {}, "server.port"),
        ("", {"GATEWAY_SERVER_PORT": "70000"}, "server.port"),
        ("[server]\nprot = 1\n", {}, "server.prot"),
        ("environment = 'staging'\n", {}, "environment"),
        ("[signing]\ncdn_base_url = 'ftp://x'\n", {}, "signing.cdn_base_url"),
        ("[proxy]\ntrusted = ['nope']\n", {}, "proxy.trusted"),
        ("[signing]\ndefault_ttl = 600\nmax_ttl = 60\n", {}, "signing.default_ttl"),
        ("this is not toml", {}, "gateway.toml"),
        ("", {"GATEWAY_SERVER_HEADER_TIMEOUT": "0"}, "server.header_timeout"),
        ("[server]\nkeepalive_timeout = -1\n", {}, "server.keepalive_timeout"),
        ("[server]\nmax_connections = 1.5\n", {}, "server.max_connections"),
    ],
)
def test_bad_settings_name_the_offending_key(tmp_path: Path, text: str, env: dict[str, str], names: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_config(tmp_path, environ=env)


def test_production_refuses_the_development_identity_provider(tmp_path: Path) -> None:
    _write(tmp_path, f"environment = 'production'\n[viewer]\nissuer = '{DEV_IDP_ISSUER}'\naudience = 'a'\n")
    with pytest.raises(ConfigError, match=r"viewer\.issuer"):
        load_config(tmp_path, environ={})


def test_production_refuses_to_start_without_an_issuer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"viewer\.issuer"):
        load_config(tmp_path, environ={"GATEWAY_ENVIRONMENT": "production"})


def test_production_with_a_real_issuer_loads(tmp_path: Path) -> None:
    _write(tmp_path, "environment = 'production'\n[viewer]\nissuer = 'https://idp.example'\n"
           "audience = 'app'\njwks_url = 'https://idp.example/jwks'\n")  # fmt: skip
    assert load_config(tmp_path, environ={}).production


@pytest.mark.parametrize(
    ("text", "env", "refused"),
    [
        ("[viewer]\nalgorithms = ['none']\n", {}, "'none'"),
        ("[viewer]\nalgorithms = ['RS256', 'HS256']\n", {}, "'HS256'"),
        ("", {"GATEWAY_VIEWER_ALGORITHMS": "EdDSA,HS512"}, "'HS512'"),
        ("[viewer]\nalgorithms = ['rs256']\n", {}, "'rs256'"),
        ("[viewer]\nalgorithms = ['ES521', 'XYZ']\n", {}, "'ES521', 'XYZ'"),
        ("[viewer]\nalgorithms = []\n", {}, "an empty list"),
    ],
    ids=["none", "hmac", "hmac-from-env", "wrong-case", "unknown", "empty"],
)
def test_viewer_algorithms_are_public_key_algorithms_only(
    tmp_path: Path, text: str, env: dict[str, str], refused: str
) -> None:
    _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path, environ=env)
    assert error.value.message == (
        "viewer.algorithms may only name public-key algorithms "
        "(RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES256K, ES384, ES512, EdDSA); refused: " + refused
    )


def test_the_default_viewer_algorithms_load(tmp_path: Path) -> None:
    _write(tmp_path, "[viewer]\nalgorithms = ['ES384', 'PS256']\n")
    assert load_config(tmp_path, environ={}).viewer.algorithms == ("ES384", "PS256")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert load_config(fresh, environ={}).viewer.algorithms == ("RS256", "ES256", "EdDSA")
