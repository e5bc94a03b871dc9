"""Three real ``gatewayctl serve`` replicas on one PostgreSQL database, used interchangeably.

The README walk-through goes to whichever replica; a revocation made with the
CLI is refused by every replica well within the bound (issue 9: 100 ms); the
audit log they write together is one sequence that ``audit verify`` accepts,
with exactly one checkpoint writer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.processes import Served, http_json, init, start_serve, wait_ready, wait_until
from tests.processes import ctl as _gatewayctl

pytestmark = pytest.mark.e2e
REPLICAS = 3


def _ctl(data_dir: Path, *argv: str) -> Any:
    return _gatewayctl(data_dir, *argv, env=_env(data_dir))


_http = http_json


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
    return {"GATEWAY_DATABASE_URL": url, "GATEWAY_AUDIT_CHECKPOINT_EVERY_SECONDS": "1"}


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Path, list[str]]]:
    data = tmp_path / "gw"
    data.mkdir()
    (data / "database.url").write_text(postgres_url)
    init(data, env=_env(data))
    served: list[Served] = []
    try:
        for index in range(REPLICAS):  # started together, as an orchestrator would
            served.append(start_serve(data, env=_env(data), name=f"replica {index + 1}", ready=False))
        for replica in served:
            wait_ready(replica)
        yield data, [replica.base for replica in served]
    finally:
        outputs = [replica.stop() for replica in served]
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
    # Refused everywhere within the replicas' staleness bound (2 s): a replica that had missed the revocation
    # would be stale, and deny everything. How fast it really lands is benchmarks/bench_revocation.py's to say.
    _refused_everywhere([one, two, three], uri, time.monotonic(), within=2.0)
    status, refused = _http(two + "/v1/sign", "POST", request, auth)
    assert (status, refused["error"]) == (403, "no_active_key")
    # Checkpoints come every second, from whichever replica holds the lock: wait until two seal this log.
    report = wait_until(lambda: _sealed_by_two_checkpoints(data), "two checkpoints over the walk-through's records")
    assert report["ok"] is True and report["records"] >= 8


def _sealed_by_two_checkpoints(data: Path) -> dict[str, Any] | None:
    report: dict[str, Any] = _ctl(data, "audit", "verify")
    return report if report["checkpoints_checked"] >= 2 else None


def test_exactly_one_replica_writes_each_checkpoint(replicas: tuple[Path, list[str]], postgres_url: str) -> None:
    """Three replicas all find a checkpoint due every second; without one writer they would write three."""

    async def times() -> list[float]:
        conn = await asyncpg.connect(postgres_url)
        try:
            return [float(r["time"]) for r in await conn.fetch("SELECT time FROM checkpoints ORDER BY time")]
        finally:
            await conn.close()

    before = len(asyncio.run(times()))
    written = wait_until(lambda: (found := asyncio.run(times())) and len(found) >= before + 4 and found,
                         "four more checkpoints")  # fmt: skip
    # Three writers would each write one every second: pairs of checkpoints within milliseconds of each other.
    assert min(b - a for a, b in itertools.pairwise(written)) >= 0.9, written


def test_an_item_created_after_its_page_missed_is_served_by_every_replica(replicas: tuple[Path, list[str]]) -> None:
    """Each replica remembers the miss (gateway.state.media); the item created on one is served by all."""
    data, bases = replicas
    web = _ctl(data, "principals", "add", "web", "--kind", "service", "--perm", "media:write")
    token = _ctl(data, "token", "--credential", web["credential_file"])["token"]
    viewer = _ctl(data, "token", "--viewer", "bob", "--workspace", "acme")["token"]
    for base in bases:
        for _ in range(2):  # the second answer comes from the remembered miss
            assert _page(base, "/m/later/video", viewer) == (404, "")
    media = {"owner": "alice", "workspace": "acme", "visibility": "workspace",
             "renditions": {"video": "/v/later/master.m3u8"}}  # fmt: skip
    status, _ = _http(bases[0] + "/v1/media/later", "PUT", media, {"Authorization": f"Bearer {token}"})
    assert status == 200
    for base in bases:
        status, location = wait_until(
            lambda base=base: (answer := _page(base, "/m/later/video", viewer))[0] == 302 and answer,
            f"{base} serving the new item's page",
        )
        assert location.startswith("https://cdn.example.com/v/later/master.m3u8?gw_exp=")
