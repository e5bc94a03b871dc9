"""Edge mode in tests and benchmarks: the demo stack with nginx running deploy/nginx/media-gateway-edge.conf,
and beside it a reference nginx in auth_request mode (deploy/nginx/media-gateway.conf) in front of the same
gateway and origin, so one URL can be put to both."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.demo import stack as local
from tests.conftest import require_service
from tests.nginx_server import nginx_binary
from tests.nginx_site import fetch
from tests.tls_support import https

LUA_MODULE = Path("/usr/share/nginx/modules/ngx_http_lua_module.so")


def require_lua() -> None:
    """Skip (or, with GATEWAY_REQUIRE_SERVICES=1, fail) without Debian's lua module for nginx."""
    if not LUA_MODULE.exists():
        require_service("nginx's lua module (apt-get install -y libnginx-mod-http-lua lua-cjson)")


@dataclass(frozen=True)
class EdgeStack:
    stack: local.Stack
    reference: str  # https://127.0.0.1:PORT of the auth_request nginx

    @property
    def edge(self) -> str:
        return self.stack.edge_url

    def status(self) -> dict[str, Any]:
        """The edge's /_gateway_edge_status (loopback server)."""
        url = f"http://{local.LOOPBACK}:{self.stack.ports.feed}/_gateway_edge_status"
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))

    def get(self, base: str, target: str) -> int:
        return fetch(base + target, self.stack.client_context())[0]

    def statuses(self, base: str, targets: list[str]) -> list[int]:
        """GET each target over one keep-alive connection (a new one when nginx closes it): the statuses."""
        host, port = base.removeprefix("https://").split(":")
        context = self.stack.client_context()
        connection: http.client.HTTPSConnection | None = None
        found = []
        for target in targets:
            if connection is None:
                connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
            connection.putrequest("GET", target, skip_accept_encoding=True)
            connection.endheaders()
            response = connection.getresponse()
            response.read()
            found.append(response.status)
            if response.will_close:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()
        return found

    def wait_for(self, what: str, done: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the edge's status until ``done(status)``; the status then. Waits for an event, not for time."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"the edge never reached {what}: {status}")
            time.sleep(0.01)

    def wait_fresh(self) -> dict[str, Any]:
        return self.wait_for("fresh state", lambda s: s["fresh"] and s["version"] is not None)

    def wait_past(self, version: int) -> dict[str, Any]:
        return self.wait_for(f"a version past {version}", lambda s: s["fresh"] and (s["version"] or 0) > version)


class Principal:
    """A principal with its own key and credential, signing through /v1/sign with the backend certificate."""

    def __init__(self, stack: local.Stack, name: str, *extra: str, algorithm: str = "ed25519") -> None:
        self.stack = stack
        self.name = name
        added = stack.gatewayctl("principals", "add", name, "--perm", "sign", *extra)
        self.credential = added["credential_file"]
        self.kid = stack.gatewayctl("keys", "create", "--principal", name, "--algorithm", algorithm)["kid"]

    def url(self, media_id: str, **body: Any) -> str:
        token = self.stack.gatewayctl("token", "--credential", self.credential)["token"]
        request = {"media_id": media_id, "rendition": "video", **body}
        status, issued = https(self.stack.ports.gateway, self.stack.client_context("backend"), "/v1/sign", "POST",
                               {"Authorization": f"Bearer {token}"}, request)  # fmt: skip
        assert status == 200, issued
        return str(issued["url"]).removeprefix(self.stack.edge_url)


@contextmanager
def running(root: Path, files: dict[str, bytes]) -> Iterator[EdgeStack]:
    """The stack in edge mode with ``files`` at the origin, and the reference nginx; the edge's state fresh."""
    stack = local.prepare(root, signing=local.Signing(cache_window=0))
    for name, body in files.items():
        path = stack.layout.media_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    binary = nginx_binary()
    with ExitStack() as processes:
        processes.enter_context(local.running(stack, binary, edge=True))
        reference = processes.enter_context(_reference(stack, binary))
        edge = EdgeStack(stack, reference)
        edge.wait_fresh()
        yield edge


@contextmanager
def _reference(stack: local.Stack, binary: str) -> Iterator[str]:
    """deploy/nginx/media-gateway.conf without its decision cache, in front of the stack's gateway and origin."""
    layout = local.Layout(stack.layout.root / "reference")
    ports = local.Ports(local.free_port(), stack.ports.gateway, stack.ports.origin)
    site = local.site_files(layout, ports, stack.pki, decision_cache=False)
    conf = local.nginx_config(layout, ports, site, origin=False)
    url = f"https://{local.LOOPBACK}:{ports.edge}"
    with local.nginx_process(binary, conf, url, stack.client_context()):
        yield url
