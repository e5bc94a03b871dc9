"""``gatewayctl health``, the container's health check (issue 19, item 12): it asks ``/readyz`` the way the
configuration says the gateway serves — HTTPS once ``[tls]`` is on, trusting exactly ``tls.cert_file`` — so
the Dockerfile's check keeps passing when TLS is turned on, and fails when nothing (or another server) answers.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.demo.pki import Pki
from examples.demo.stack import Layout, free_port, gateway_process
from tests.tls_support import client_context, pki_in

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parent.parent
GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]


def _health(data_dir: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = subprocess.run([*GATEWAYCTL, "health", "--data-dir", str(data_dir), *argv], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _dockerfile_check() -> list[str]:
    """The HEALTHCHECK's command, as the Dockerfile runs it (exec form)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("HEALTHCHECK ")]
    return list(json.loads(line.split(" CMD ", 1)[1]))


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Layout, int]:
    layout = Layout(tmp_path)
    subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(layout.data_dir)], check=True, capture_output=True)
    port = free_port()
    config = layout.data_dir / "gateway.toml"
    config.write_text(config.read_text().replace("port = 8080", f"port = {port}"))
    return layout, port


@pytest.fixture
def tls_served(layout: tuple[Layout, int]) -> Iterator[tuple[Layout, int, Pki]]:
    """``serve`` with [tls] and client certificates demanded on the API, as in a deployment behind nginx."""
    served, port = layout
    pki = pki_in(served.data_dir)
    with (served.data_dir / "gateway.toml").open("a") as toml:
        toml.write('\n[tls]\ncert_file = "pki/gateway.crt"\nkey_file = "pki/gateway.key"\n'
                   'client_ca_file = "pki/ca.crt"\nrequire_client_cert = ["verify", "api"]\n')  # fmt: skip
    with gateway_process(served, f"https://127.0.0.1:{port}", client_context(pki, "proxy")):
        yield served, port, pki


def test_the_dockerfile_checks_health_with_gatewayctl_health() -> None:
    assert _dockerfile_check() == ["gatewayctl", "health", "--timeout", "2"]


def test_plain_http_ready_and_not_running(layout: tuple[Layout, int]) -> None:
    served, port = layout
    with gateway_process(served, f"http://127.0.0.1:{port}", client_context(pki_in(served.root))):
        assert _health(served.data_dir) == (0, f"ok: http://127.0.0.1:{port}/readyz answered 200\n", "")
    assert _health(served.data_dir) == (1, f"not reachable: http://127.0.0.1:{port}/readyz: Connection refused\n", "")


def test_with_tls_on_the_check_speaks_https_and_trusts_the_configured_certificate(
    tls_served: tuple[Layout, int, Pki],
) -> None:
    served, port, _ = tls_served
    command = _dockerfile_check()
    assert command[0] == "gatewayctl"
    env = {**os.environ, "GATEWAY_DATA_DIR": str(served.data_dir)}  # as the image sets it
    done = subprocess.run([*GATEWAYCTL, *command[1:]], capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ok: https://127.0.0.1:{port}/readyz answered 200\n", "")
    assert _health(served.data_dir, "--host", "0.0.0.0")[1]  # noqa: S104 (asked on loopback) == f"ok: https://127.0.0.1:{port}/readyz answered 200\n"


def test_with_tls_another_server_on_the_port_is_not_taken_for_the_gateway(
    tls_served: tuple[Layout, int, Pki], tmp_path: Path
) -> None:
    served, port, _ = tls_served
    other = pki_in(tmp_path / "other")  # another CA, another certificate: not what tls.cert_file holds
    toml = served.data_dir / "gateway.toml"
    toml.write_text(toml.read_text().replace('cert_file = "pki/gateway.crt"', f'cert_file = "{other.cert("gateway")}"'))
    code, out, err = _health(served.data_dir)
    assert (code, err) == (1, "")
    assert out == f"not reachable: https://127.0.0.1:{port}/readyz: TLS: not the certificate in tls.cert_file " \
                  "(self-signed certificate in certificate chain)\n"  # fmt: skip


def test_a_plain_http_check_against_a_tls_listener_fails(tls_served: tuple[Layout, int, Pki]) -> None:
    served, port, _ = tls_served
    toml = served.data_dir / "gateway.toml"
    toml.write_text(toml.read_text().split("\n[tls]\n")[0])  # the old check's view: no TLS
    code, out, _ = _health(served.data_dir)
    assert code == 1 and out.startswith(f"not reachable: http://127.0.0.1:{port}/readyz: "), shlex.quote(out)
