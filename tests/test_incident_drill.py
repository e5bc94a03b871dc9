"""The compromise drill: URLs issued under a key, some redeemed from another network;
the one-command report names exactly those redemptions and the affected subjects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.audit.forensics import incident_report
from gateway.cli.main import main as gatewayctl
from gateway.model import Permission, Visibility
from tests.support import World

VIEWER_NET_A = "198.51.100.23"  # where the viewers are
OUTSIDER = "203.0.113.200"  # someone else, elsewhere


@pytest.fixture
async def staged(world: World, client: TestClient) -> tuple[World, str, list[str]]:
    key = await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.principal("other", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    assert key is not None
    await world.media("alice-film", owner="alice")
    await world.media("bob-film", owner="bob")
    await world.media("carol-film", owner="carol", visibility=Visibility.PUBLIC)
    uris = []
    for media, viewer in (("alice-film", "alice"), ("bob-film", "bob")):
        body = {"media_id": media, "rendition": "video", "viewer": {"id": viewer}, "viewer_ip": VIEWER_NET_A}
        response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
        assert response.status == 200
        uris.append((await response.json())["url"].removeprefix("https://cdn.example.com"))
        world.clock.advance(60)
    # carol's film is signed by another principal: not part of this key's story
    body = {"media_id": "carol-film", "rendition": "video", "viewer": {"id": "carol"}}
    assert (await client.post("/v1/sign", json=body, headers=world.auth("other"))).status == 200
    return world, key.kid, uris


async def _redeem(client: TestClient, uri: str, ip: str) -> int:
    # the test client is 127.0.0.1, a trusted proxy in init's config: X-Forwarded-For is believed
    response = await client.get("/v1/verify", headers={"X-Original-URI": uri, "X-Forwarded-For": ip})
    return response.status


async def test_report_names_outsider_use_and_affected_subjects(
    staged: tuple[World, str, list[str]], client: TestClient
) -> None:
    world, kid, (alice_uri, bob_uri) = staged
    assert await _redeem(client, alice_uri, VIEWER_NET_A) == 200
    assert await _redeem(client, alice_uri, "198.51.100.99") == 200  # same /24: the viewer, not an outsider
    assert await _redeem(client, bob_uri, OUTSIDER) == 200  # the stolen URL, used from elsewhere
    assert await _redeem(client, bob_uri, OUTSIDER) == 200  # repeat: aggregated, not logged again
    await world.services.behind.flush()  # redemptions are written behind (within a second)
    report = await incident_report(world.services.store, world.services.audit_log, kid, None)
    # Each issuance keeps the caller's own network (the backend's) and, beside it, the viewer's it asserted.
    assert [(u["media_id"], u["network"], u["viewer_network"]) for u in report["issuances"]] == [
        ("alice-film", "127.0.0.0/24", "198.51.100.0/24"), ("bob-film", "127.0.0.0/24", "198.51.100.0/24"),
    ]  # fmt: skip
    assert [u["network"] for u in report["redemptions"]] == ["198.51.100.0/24", "203.0.113.0/24"]
    assert [u["network"] for u in report["outsider_redemptions"]] == ["203.0.113.0/24"]
    assert report["affected_subjects"] == ["alice", "bob"]
    assert report["first_use"] == report["issuances"][0]["time"]
    assert report["last_use"] == report["redemptions"][-1]["time"]


async def test_report_since_and_cli(staged: tuple[World, str, list[str]], client: TestClient, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    world, kid, (_, bob_uri) = staged
    await _redeem(client, bob_uri, OUTSIDER)
    await world.services.behind.flush()
    since = world.clock() - 61  # after alice's issuance, before bob's
    report = await incident_report(world.services.store, world.services.audit_log, kid, since)
    assert [u["media_id"] for u in report["issuances"]] == ["bob-film"]
    out = tmp_path / "report.json"
    data_dir = str(world.services.config.data_dir)
    code = await _run_cli(["incident", "report", "--kid", kid, "--json", str(out), "--data-dir", data_dir])
    assert code == 0
    text = capsys.readouterr().out
    assert "203.0.113.0/24" in text and "alice" in text and "bob" in text
    assert json.loads(out.read_text())["affected_subjects"] == ["alice", "bob"]


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(gatewayctl, argv)
