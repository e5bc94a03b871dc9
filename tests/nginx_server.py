"""A real nginx (Debian's nginx-core) started by a test on loopback, with a config of its own."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import servicelogs
from tests.conftest import require_service


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        require_service("nginx (apt-get install -y nginx-core)")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_nginx(workdir: Path, server_block: str, http_block: str = "", modules: str = "") -> Iterator[str]:
    """Start nginx in the foreground with ``server_block`` on a free loopback port; yield its base URL.

    ``http_block`` goes into the http { } block (an upstream, a map); ``modules``, first in the main context
    (``load_module`` lines).
    """
    binary = nginx_binary()
    port = free_port()
    for name in ("logs", "tmp"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    # As root, nginx's workers would drop to 'nobody', who cannot read pytest's 0700 temp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""
{modules}{user}
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
{http_block}
    server {{
        listen 127.0.0.1:{port};
{server_block}
    }}
}}
"""
    )
    proc = subprocess.Popen([binary, "-p", str(workdir), "-c", str(conf)], stderr=subprocess.PIPE)
    servicelogs.watch("nginx", workdir / "logs" / "error.log")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, proc)
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _wait(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {proc.stderr.read() if proc.stderr else b''!r}")
        try:
            urllib.request.urlopen(base + "/__nginx_alive", timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start")


def raw_get(base: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client-side normalisation of dot segments or escapes)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
