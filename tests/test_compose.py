"""deploy/compose.yaml holds together: the services the README names, one database for both replicas,
the volumes the Dockerfile declares, nginx's site naming the gateways it runs and passing ``nginx -t``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from tests.nginx_server import nginx_binary

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as compose reads it, with POSTGRES_PASSWORD=secret and every other variable at its default."""
    text = COMPOSE.read_text().replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}", "secret")
    return dict(yaml.safe_load(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)))


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


def test_two_gateways_postgresql_and_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "init", "gateway-1", "gateway-2", "nginx"} <= set(services)
    one, two = services["gateway-1"], services["gateway-2"]
    assert _env(one) == _env(two)
    assert _env(one)["GATEWAY_DATABASE_URL"] == "postgresql://gateway:secret@postgres:5432/gateway"
    assert (one["command"], services["init"]["command"]) == (["gatewayctl", "serve"], ["gatewayctl", "init"])
    assert one["volumes"] == two["volumes"] == ["gateway-keys:/data", "audit-export:/exports"]  # same master key
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]  # not beside the keys


def test_the_gateway_environment_is_valid_configuration(compose: dict[str, Any], tmp_path: Path) -> None:
    config = load_config(tmp_path, environ=_env(compose["services"]["gateway-1"]))
    nginx = compose["services"]["nginx"]["networks"]["gateway"]["ipv4_address"]
    assert [str(n) for n in config.trusted_proxies] == [f"{nginx}/32"]  # nginx's X-Forwarded-For is believed
    assert config.shutdown_timeout < int(compose["services"]["gateway-1"]["stop_grace_period"].rstrip("s"))


def test_the_dockerfile_keeps_keys_database_and_exports_apart() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'VOLUME ["/data", "/db", "/exports"]' in dockerfile
    assert "GATEWAY_DATABASE_URL=sqlite:////db/gateway.db" in dockerfile
    assert "GATEWAY_AUDIT_EXPORT_DIR=/exports" in dockerfile


def test_nginx_site_names_the_gateways_and_passes_nginx_t(compose: dict[str, Any], tmp_path: Path) -> None:
    site = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    upstreams = re.findall(r"server (gateway-\d):(\d+);", site)
    assert upstreams == [("gateway-1", "8080"), ("gateway-2", "8080")]
    assert {name for name, _ in upstreams} <= set(compose["services"])
    assert "./compose/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in compose["services"]["nginx"]["volumes"]
    # nginx -t resolves upstream names: give it loopback for the compose network's names.
    local = site.replace("gateway-1:8080", "127.0.0.1:8081").replace("gateway-2:8080", "127.0.0.1:8082")
    local = local.replace("listen 80;", "listen 127.0.0.1:8080;")
    (tmp_path / "site.conf").write_text(local)
    main = (f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{ access_log off; include {tmp_path}/site.conf; }}\n")  # fmt: skip
    (tmp_path / "nginx.conf").write_text(main)
    done = subprocess.run([nginx_binary(), "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c",
                           str(tmp_path / "nginx.conf")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
