"""Three real ``gatewayctl serve`` replicas on one PostgreSQL database, used interchangeably.

The README walk-through goes to whichever replica; a revocation made with the
CLI is refused by every replica well within the bound (issue 9: 100 ms); the
audit log they write together is one sequence that ``audit verify`` accepts,
with exactly one checkpoint writer.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_e2e_serve import _free_port, _wait_ready

pytestmark = pytest.mark.e2e
GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]
REPLICAS = 3


def _ctl(data_dir: Path, *argv: str) -> dict:
    done = subprocess.run([*GATEWAYCTL, *argv, "--data-dir", str(data_dir), "--json"], capture_output=True, text=True,
                          env=_env(data_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _http(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _page(base: str, path: str, viewer: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {viewer}"})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", "")


def _env(data_dir: Path) -> dict[str, str]:
    """Every process of the deployment names the same database (and checkpoints every second)."""
    url = (data_dir / "database.url").read_text()
    return {**os.environ, "GATEWAY_DATABASE_URL": url, "GATEWAY_AUDIT_CHECKPOINT_EVERY_SECONDS": "1"}


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Path, list[str]]]:
    data = tmp_path / "gw"
    data.mkdir()
    (data / "database.url").write_text(postgres_url)
    subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(data)], check=True, capture_output=True, env=_env(data))
    procs, bases = [], []
    try:
        for _ in range(REPLICAS):
            port = _free_port()
            proc = subprocess.Popen([*GATEWAYCTL, "serve", "--data-dir", str(data), "--port", str(port)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(data))  # fmt: skip
            procs.append(proc)
            bases.append(f"http://127.0.0.1:{port}")
            _wait_ready(bases[-1], proc)
        yield data, bases
    finally:
        for proc in procs:
            proc.terminate()
        outputs = [proc.communicate(timeout=15)[0].decode() for proc in procs]
    assert not [line for out in outputs for line in out.splitlines() if "checkpoint failed" in line]


def _refused_everywhere(bases: list[str], uri: str, started: float, within: float) -> list[float]:
    """Seconds after ``started`` at which each replica first refused ``uri`` (polled as fast as it answers)."""
    seen: dict[str, float] = {}
    while len(seen) < len(bases):
        for base in bases:
            if base in seen:
                continue
            status, _ = _http(base + "/v1/verify", headers={"X-Original-URI": uri})
            if status == 403:
                seen[base] = time.monotonic() - started
        assert time.monotonic() - started < within, f"not refused everywhere within {within} s: {seen}"
    return [seen[base] for base in bases]


def test_three_replicas_serve_the_walk_through_interchangeably(replicas: tuple[Path, list[str]]) -> None:
    data, (one, two, three) = replicas
    web = _ctl(data, "principals", "add", "web", "--kind", "service",
               "--perm", "sign", "--perm", "sign:on-behalf", "--perm", "media:write")  # fmt: skip
    key = _ctl(data, "keys", "create", "--principal", "web")
    token = _ctl(data, "token", "--credential", web["credential_file"])["token"]
    auth = {"Authorization": f"Bearer {token}"}
    media = {"owner": "alice", "workspace": "acme", "visibility": "workspace",
             "renditions": {"video": "/v/intro/master.m3u8", "thumbnail": "/t/intro.jpg"}}  # fmt: skip
    status, body = _http(one + "/v1/media/intro", "PUT", media, auth)
    assert (status, body["prefixes"]) == (200, {"video": "/v/intro/"})
    viewer = _ctl(data, "token", "--viewer", "bob", "--workspace", "acme")["token"]
    status, location = _page(two, "/m/intro/video", viewer)  # the item put on one, the page on another
    assert status == 302 and location.startswith("https://cdn.example.com/v/intro/master.m3u8?gw_exp=")
    request = {"media_id": "intro", "rendition": "video", "viewer_token": viewer, "scope": "prefix"}
    status, signed = _http(three + "/v1/sign", "POST", request, auth)
    assert status == 200 and signed["kid"] == key["kid"]
    uri = signed["url"].removeprefix("https://cdn.example.com").replace("master.m3u8", "seg1.ts")
    for base in (one, two, three):
        status, allowed = _http(base + "/v1/verify", headers={"X-Original-URI": uri})
        assert (status, allowed["kid"]) == (200, key["kid"])
    _ctl(data, "keys", "revoke", key["kid"], "--reason", "laptop stolen")
    latencies = _refused_everywhere([one, two, three], uri, time.monotonic(), within=1.0)
    assert max(latencies) < 0.1, latencies
    status, refused = _http(two + "/v1/sign", "POST", request, auth)
    assert (status, refused["error"]) == (403, "no_active_key")
    time.sleep(3.5)  # checkpoints every second, by whichever replica holds the lock
    report = _ctl(data, "audit", "verify")
    assert report["ok"] is True and report["records"] >= 8 and report["checkpoints_checked"] >= 2


def test_exactly_one_replica_writes_each_checkpoint(replicas: tuple[Path, list[str]], postgres_url: str) -> None:
    """Three replicas all find a checkpoint due every second; without one writer they would write three."""
    import asyncio

    import asyncpg

    async def times() -> list[float]:
        conn = await asyncpg.connect(postgres_url)
        try:
            return [float(r["time"]) for r in await conn.fetch("SELECT time FROM checkpoints ORDER BY time")]
        finally:
            await conn.close()

    before = len(asyncio.run(times()))
    time.sleep(4.5)
    written = asyncio.run(times())
    assert 3 <= len(written) - before <= 6, written  # about one a second in all, not three
    assert min(b - a for a, b in itertools.pairwise(written)) >= 0.9, written
