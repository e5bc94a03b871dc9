"""One end-to-end run of the real ``gatewayctl serve`` process over a socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]


def _ctl(data_dir: Path, *argv: str) -> dict:
    out = subprocess.run([*GATEWAYCTL, *argv, "--data-dir", str(data_dir), "--json"],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(tmp_path)], check=True, capture_output=True)
    port = _free_port()
    env = {**os.environ, "GATEWAY_SERVER_PORT": str(port)}
    proc = subprocess.Popen([*GATEWAYCTL, "serve", "--data-dir", str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        yield tmp_path, base
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else b''!r}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def _call(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_sign_verify_revoke_against_the_real_process(server: tuple[Path, str]) -> None:
    data_dir, base = server
    added = _ctl(data_dir, "principals", "add", "web", "--perm", "sign", "--perm", "sign:on-behalf")
    key = _ctl(data_dir, "keys", "create", "--principal", "web")
    _ctl(data_dir, "media", "put", "m1", "--owner", "alice", "--workspace", "w1", "--video", "/v/m1/index.m3u8")
    token = _ctl(data_dir, "token", "--credential", added["credential_file"])["token"]
    request = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    status, body = _call(base + "/v1/sign", "POST", request,
                         {"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 200, body
    assert body["kid"] == key["kid"]
    uri = body["url"].removeprefix("https://cdn.example.com")
    assert _call(base + "/v1/verify", headers={"X-Original-URI": uri})[0] == 200
    _ctl(data_dir, "keys", "revoke", key["kid"], "--reason", "e2e")
    assert _call(base + "/v1/verify", headers={"X-Original-URI": uri})[0] == 403
    events = [r["event"] for r in _ctl(data_dir, "audit", "tail", "-n", "4")]
    assert events == ["media:put", "url:issued", "url:redeemed", "key:revoked"]
