"""TLS on the gateway's own listener, client certificates from the proxy, and reload on SIGHUP.

A throwaway CA (examples/demo/pki.py, made with ``cryptography``) signs the gateway's certificate
and the client certificates of nginx ("proxy") and the application backend ("backend").
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from examples.demo.pki import Authority, Pki, write_pair
from examples.demo.stack import Layout, free_port, gateway_process
from gateway.config import CLIENT_CERT_ROUTES, Config, load_config
from gateway.errors import ConfigError
from gateway.model import Permission
from gateway.services import open_services
from gateway.web import routes, tls
from gateway.web.app import create_app
from gateway.web.clientcert import route_group
from tests.support import Clock, World, init_data_dir
from tests.tls_support import client_context, https, pki_in, served_serial, with_tls

CERT_REQUIRED = {
    "error": "client_certificate_required",
    "message": "this route answers only clients with a certificate from the configured CA (tls.client_ca_file)",
}
GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]

# --- configuration ----------------------------------------------------------------------------

_BOTH = {"GATEWAY_TLS_CERT_FILE": "gateway.crt", "GATEWAY_TLS_KEY_FILE": "gateway.key"}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY_TLS_CERT_FILE": "gateway.crt"}, "tls.cert_file and tls.key_file go together: set both or neither"),
        ({"GATEWAY_TLS_KEY_FILE": "gateway.key"}, "tls.cert_file and tls.key_file go together: set both or neither"),
        ({"GATEWAY_TLS_CLIENT_CA_FILE": "ca.crt"},
         "tls.client_ca_file needs tls.cert_file: client certificates are asked for only over TLS"),
        ({**_BOTH, "GATEWAY_TLS_REQUIRE_CLIENT_CERT": "verify"},
         "tls.require_client_cert needs tls.client_ca_file: the CA the client certificates come from"),
        ({**_BOTH, "GATEWAY_TLS_CLIENT_CA_FILE": "ca.crt", "GATEWAY_TLS_REQUIRE_CLIENT_CERT": "verify,pages"},
         "tls.require_client_cert may name verify, api; refused: 'pages'"),
    ],
    ids=["cert-without-key", "key-without-cert", "ca-without-tls", "require-without-ca", "unknown-route-group"],
)  # fmt: skip
def test_tls_settings_are_checked_at_start(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, environ=environ)
    assert refused.value.message == message


def test_tls_settings_from_the_file_relative_to_the_data_directory(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text(
        '[tls]\ncert_file = "tls/gw.crt"\nkey_file = "/etc/gw.key"\nclient_ca_file = "tls/ca.crt"\n'
        'require_client_cert = ["api", "verify", "api"]\n'
    )
    config = load_config(tmp_path, environ={})
    assert config.data_path(config.tls_cert_file) == tmp_path / "tls" / "gw.crt"
    assert config.data_path(config.tls_key_file) == Path("/etc/gw.key")
    assert config.tls_require_client_cert == ("api", "verify")


def test_every_route_but_pages_and_public_documents_can_demand_a_certificate() -> None:
    """A route nobody classified is "api" (fail closed): only pages and four documents stay open."""
    groups = {route.operation_id: route_group(route.path) for route in routes.ROUTES}
    assert groups["verify"] == groups["verifyPath"] == "verify"
    assert {op for op, group in groups.items() if group is None} == {"openPage", "health", "ready", "jwks", "openapi"}
    assert {group for group in groups.values() if group is not None} <= set(CLIENT_CERT_ROUTES)
    assert groups["sign"] == groups["signBatch"] == groups["putMedia"] == groups["deleteMedia"] == "api"


# --- the listener, in process -----------------------------------------------------------------


async def _serve(config: Config, require: tuple[str, ...]) -> AsyncIterator[tuple[TestServer, World, Pki]]:
    pki = pki_in(config.data_dir)
    config = with_tls(config, pki, require)
    clock = Clock(time.time())
    services = await open_services(config, clock=clock)
    world = World(services, clock)
    server = TestServer(create_app(services, close_services=False), host="127.0.0.1")
    await server.start_server(ssl=tls.server_context(config))
    try:
        yield server, world, pki
    finally:
        await server.close()
        await services.close()


@pytest.fixture
async def gateway(config: Config) -> AsyncIterator[tuple[TestServer, World, Pki]]:
    async for served in _serve(config, ("verify", "api")):
        yield served


@pytest.fixture
async def verify_only(config: Config) -> AsyncIterator[tuple[TestServer, World, Pki]]:
    async for served in _serve(config, ("verify",)):
        yield served


async def _call(
    server: TestServer, context: ssl.SSLContext, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"https://127.0.0.1:{server.port}{path}", ssl=context, **kwargs) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else {}
        return response.status, body


async def _signed_uri(server: TestServer, world: World, pki: Pki) -> str:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "scope": "prefix"}
    status, issued = await _call(server, client_context(pki, "backend"), "POST", "/v1/sign",
                                 json=body, headers=world.auth("web"))  # fmt: skip
    assert status == 200, issued
    return str(issued["url"]).removeprefix("https://cdn.example.com")


async def test_without_a_client_certificate_verify_and_the_api_answer_403_json(
    gateway: tuple[TestServer, World, Pki],
) -> None:
    server, world, pki = gateway
    uri = await _signed_uri(server, world, pki)
    anyone = client_context(pki)  # trusts the gateway, presents no certificate: a browser
    sign = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    answers = {
        "verify": await _call(server, anyone, "GET", "/v1/verify", headers={"X-Original-URI": uri}),
        "verify-path": await _call(server, anyone, "GET", "/v1/verify" + uri),
        "sign": await _call(server, anyone, "POST", "/v1/sign", json=sign, headers=world.auth("web")),
        "media": await _call(server, anyone, "GET", "/v1/media/m1", headers=world.auth("web")),
    }
    assert answers == dict.fromkeys(answers, (403, CERT_REQUIRED))
    # The same connection-level TLS serves browsers on the page URLs and everyone on the public documents.
    assert (await _call(server, anyone, "GET", "/m/m1/video"))[0] == 401  # the page's own answer: no viewer
    assert (await _call(server, anyone, "GET", "/healthz")) == (200, {"status": "ok"})
    assert (await _call(server, anyone, "GET", "/.well-known/jwks.json"))[0] == 200
    assert (await _call(server, anyone, "GET", "/nothing-here"))[0] == 404


async def test_the_proxy_certificate_unlocks_verify(gateway: tuple[TestServer, World, Pki]) -> None:
    server, world, pki = gateway
    uri = await _signed_uri(server, world, pki)
    proxy = client_context(pki, "proxy")
    assert (await _call(server, proxy, "GET", "/v1/verify", headers={"X-Original-URI": uri}))[0] == 200
    tampered = uri.replace("/v/m1/", "/v/m2/")
    assert await _call(server, proxy, "GET", "/v1/verify", headers={"X-Original-URI": tampered}) == (
        403, {"error": "denied", "message": "the signed URL is not valid"},
    )  # fmt: skip


async def test_a_certificate_from_another_ca_fails_the_handshake(
    gateway: tuple[TestServer, World, Pki], tmp_path: Path
) -> None:
    """An impostor's certificate is not "no certificate": the TLS handshake itself is refused."""
    server, _, pki = gateway
    impostor = Authority("impostor CA")
    write_pair(tmp_path, "impostor", *impostor.issue("nginx", client=True))
    context = client_context(pki)
    context.load_cert_chain(tmp_path / "impostor.crt", tmp_path / "impostor.key")
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await _call(server, context, "GET", "/healthz")


async def test_only_the_named_route_groups_demand_a_certificate(verify_only: tuple[TestServer, World, Pki]) -> None:
    server, _, pki = verify_only
    anyone = client_context(pki)
    sign = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    status, body = await _call(server, anyone, "POST", "/v1/sign", json=sign)
    assert (status, body["error"]) == (401, "unauthenticated")  # the API's own check, not the certificate's
    assert await _call(server, anyone, "GET", "/v1/verify", headers={"X-Original-URI": "/v/m1/x"}) == (
        403, CERT_REQUIRED,
    )  # fmt: skip


def test_a_key_that_does_not_fit_is_a_configuration_error(tmp_path: Path) -> None:
    pki = pki_in(tmp_path)
    config = with_tls(init_data_dir(tmp_path / "data"), pki)
    with pytest.raises(ConfigError, match=r"^tls.cert_file/tls.key_file: cannot use .* key values mismatch"):
        tls.server_context(dataclasses.replace(config, tls_key_file=str(pki.key("edge"))))
    with pytest.raises(ConfigError, match=r"^tls.key_file: no such file: .*/missing.key$"):
        tls.server_context(dataclasses.replace(config, tls_key_file=str(tmp_path / "missing.key")))


# --- the real process: gatewayctl serve with [tls], SIGHUP ----------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Pki, Layout]]:
    """``gatewayctl serve`` with the certificate files in the data directory, as an operator keeps them."""
    layout = Layout(tmp_path)
    subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(layout.data_dir)], check=True, capture_output=True)
    pki = pki_in(layout.data_dir)
    port = free_port()
    config = layout.data_dir / "gateway.toml"
    text = config.read_text().replace("port = 8080", f"port = {port}")
    config.write_text(text + '\n[tls]\ncert_file = "pki/gateway.crt"\nkey_file = "pki/gateway.key"\n')
    with gateway_process(layout, f"https://127.0.0.1:{port}", client_context(pki)) as proc:
        yield proc, port, pki, layout


def _wait_for_line(log: Path, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if text in line:
                return line
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {log}:\n{log.read_text()}")


class _Load:
    """Requests on fresh connections, one after another, until stopped: every answer must be a 200."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(port, context))

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for_more(self, count: int) -> None:
        """Until ``count`` more answers have come (the load is running across whatever happens meanwhile)."""
        target = len(self.answers) + count
        deadline = time.monotonic() + 60
        while len(self.answers) < target:
            assert time.monotonic() < deadline, f"the load stalled at {self.answers[-3:]}"
            time.sleep(0.01)

    def _run(self, port: int, context: ssl.SSLContext) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(https(port, context, "/readyz")[0])
            except OSError as exc:
                self.answers.append(repr(exc))


def _serial(port: int, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        return served_serial(connection)
    finally:
        connection.close()


def test_serve_speaks_https_and_sighup_swaps_the_certificate_without_dropping_anyone(
    served: tuple[subprocess.Popen[bytes], int, Pki, Layout],
) -> None:
    proc, port, pki, layout = served
    assert f"serving on https://127.0.0.1:{port}" in layout.gateway_log.read_text()
    context = client_context(pki)
    old_serial = _serial(port, context)
    kept = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)  # open across the reload
    kept.request("GET", "/healthz")
    assert kept.getresponse().read() == b'{"status":"ok"}'
    replacement, key = pki.authority.issue("gateway.internal", server_names=("gateway.internal", "127.0.0.1"))
    with _Load(port, context) as load:
        load.wait_for_more(6)  # connections before the reload...
        write_pair(pki.directory, "gateway", replacement, key)
        proc.send_signal(signal.SIGHUP)
        line = _wait_for_line(layout.gateway_log, "reloaded the TLS certificate")
        load.wait_for_more(6)  # ...and after it, on fresh connections
    assert f"serial {replacement.serial_number:x}" in line
    kept.request("GET", "/healthz")  # the same keep-alive connection, negotiated before the reload
    assert kept.getresponse().read() == b'{"status":"ok"}'
    assert served_serial(kept) == old_serial
    kept.close()
    assert _serial(port, context) == replacement.serial_number != old_serial
    assert len(load.answers) > 10
    assert set(load.answers) == {200}
    assert proc.poll() is None


def test_a_certificate_that_does_not_fit_is_refused_on_sighup_and_the_old_one_kept(
    served: tuple[subprocess.Popen[bytes], int, Pki, Layout],
) -> None:
    proc, port, pki, layout = served
    context = client_context(pki)
    old_serial = _serial(port, context)
    replacement, _ = pki.authority.issue("gateway.internal", server_names=("127.0.0.1",))
    _, other_key = pki.authority.issue("someone else")
    write_pair(pki.directory, "gateway", replacement, other_key)  # a half-finished rotation
    proc.send_signal(signal.SIGHUP)
    line = _wait_for_line(layout.gateway_log, "TLS reload refused")
    assert "still serving the old certificate: tls.cert_file/tls.key_file: cannot use" in line
    assert _serial(port, context) == old_serial
    assert proc.poll() is None


def test_serve_exits_78_naming_a_missing_certificate(tmp_path: Path) -> None:
    subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(tmp_path)], check=True, capture_output=True)
    env = {**os.environ, "GATEWAY_SERVER_PORT": str(free_port()), "GATEWAY_TLS_CERT_FILE": "nope.crt",
           "GATEWAY_TLS_KEY_FILE": "nope.key"}  # fmt: skip
    done = subprocess.run([*GATEWAYCTL, "serve", "--data-dir", str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 78
    assert f"tls.cert_file: no such file: {tmp_path}/nope.crt" in done.stderr
    assert "serving on" not in done.stdout
