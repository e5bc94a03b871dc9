"""Cache-friendly URLs (``signing.cache_window``): one URL per window for the same request, each issuance audited, and
revocations exactly as before (gateway.signing.issuance, "Cache-friendly URLs").

The rule: ``iat = floor(now / W) * W``, ``exp = iat + W + ttl``, so the URL lives from ``ttl`` to ``ttl + W``
seconds; an issue time never passes the moment of issue, and one issued after a revocation R in R's own window
takes the first second after R.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.model import Permission, PrincipalKind, Visibility
from gateway.store.base import AuditQuery
from tests.support import ADMIN, T0, World, init_data_dir

WINDOW = 60  # the default


async def _sign(client: TestClient, world: World, pid: str = "web", **body: Any) -> dict[str, Any]:
    request = {"media_id": "m1", "rendition": "video", "viewer": {"id": "bob"}, **body}
    response = await client.post("/v1/sign", json=request, headers=world.auth(pid))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _verify(client: TestClient, url: str) -> int:
    uri = url.removeprefix("https://cdn.example.com")
    return (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status


def _param(url: str, name: str) -> int:
    return int(url.split(f"{name}=", 1)[1].split("&", 1)[0])


@pytest.fixture
async def web(world: World) -> World:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    await world.media("m1", visibility=Visibility.UNLISTED)
    return world


async def test_one_request_gets_one_url_per_window_and_each_issuance_its_own_record(
    client: TestClient, web: World
) -> None:
    web.clock.now = T0 + 17.4  # inside the window that began at T0
    first = await _sign(client, web, ttl=120)
    assert (_param(first["url"], "gw_iat"), first["expires_at"]) == (T0, T0 + WINDOW + 120)
    web.clock.now = T0 + 59.9
    again = await _sign(client, web, ttl=120)
    assert again["url"] == first["url"] and again["issuance_id"] != first["issuance_id"]
    assert again["expires_at"] - web.clock() >= 120  # still lives the ttl asked for, at the window's end
    issued = await web.services.store.audit.search(AuditQuery(event="url:issued"))
    assert [record.url_sha256 for record in issued] == [issued[0].url_sha256] * 2  # two issuances, one URL
    web.clock.now = T0 + 60
    assert (await _sign(client, web, ttl=120))["url"] != first["url"]  # the next window


async def test_anything_else_about_the_request_gives_another_url(client: TestClient, web: World) -> None:
    base = (await _sign(client, web))["url"]
    others = {
        "rendition": await _sign(client, web, rendition="thumbnail"),
        "scope": await _sign(client, web, scope="prefix"),
        "form": await _sign(client, web, scope="prefix", form="path"),
        "binding": await _sign(client, web, client_ip="203.0.113.7"),
        "ttl": await _sign(client, web, ttl=200),
    }
    assert len({base, *(answer["url"] for answer in others.values())}) == 1 + len(others)
    assert (await _sign(client, web, viewer={"id": "carol"}))["url"] == base  # the viewer is not in the URL


async def test_a_link_revocation_still_stops_every_url_issued_before_it(client: TestClient, web: World) -> None:
    web.clock.now = T0 + 10
    before = await _sign(client, web, scope="prefix")
    web.clock.now = T0 + 20.5
    await web.services.admin.revoke_links(ADMIN, "m1", "leaked", web.clock())
    assert await _verify(client, before["url"]) == 403
    # In the revocation's own second nothing issued can be told from what came before: refused from birth.
    same_second = await _sign(client, web, scope="prefix")
    assert (_param(same_second["url"], "gw_iat"), await _verify(client, same_second["url"])) == (T0 + 20, 403)
    web.clock.now = T0 + 21.2  # after it, in its window: the first second after the revocation, not T0
    after = await _sign(client, web, scope="prefix")
    assert (_param(after["url"], "gw_iat"), after["expires_at"]) == (T0 + 21, T0 + WINDOW + 300)
    assert await _verify(client, after["url"].replace("master.m3u8", "seg-1.ts")) == 200
    web.clock.now = T0 + 45
    assert (await _sign(client, web, scope="prefix"))["url"] == after["url"]  # one URL for the rest of the window
    web.clock.now = T0 + 61
    assert _param((await _sign(client, web, scope="prefix"))["url"], "gw_iat") == T0 + 60


async def test_no_issue_time_is_ever_later_than_its_issuance(client: TestClient, web: World) -> None:
    """The other direction: a URL issued before a revocation R must not carry an issue time after R."""
    for moment in (0.0, 0.9, 20.4, 59.99):
        web.clock.now = T0 + moment
        answer = await _sign(client, web)
        assert _param(answer["url"], "gw_iat") <= web.clock()
        await web.services.admin.revoke_links(ADMIN, "m1", "again", web.clock() + 0.01)
        assert await _verify(client, answer["url"]) == 403


async def test_a_url_issued_between_two_revocations_in_one_second_does_not_outlive_the_second(
    client: TestClient, web: World
) -> None:
    """Issued after a revocation at R1 and before one at R2, both in second S: its issue time may not be S + 1
    (the first second after R1), which R2 would not reach; it is S, refused by both."""
    web.clock.now = T0 + 20.1
    await web.services.admin.revoke_links(ADMIN, "m1", "first", web.clock())
    web.clock.now = T0 + 20.2
    between = await _sign(client, web)
    web.clock.now = T0 + 20.5
    await web.services.admin.revoke_links(ADMIN, "m1", "second", web.clock())
    web.clock.now = T0 + 22
    assert (_param(between["url"], "gw_iat"), await _verify(client, between["url"])) == (T0 + 20, 403)


async def test_a_revoked_grant_stops_what_was_issued_under_it_and_a_new_grant_issues_again(
    client: TestClient, web: World
) -> None:
    await web.principal("eve", Permission.SIGN, Permission.SIGN_ON_BEHALF, kind=PrincipalKind.ENGINEER)
    await web.media("secret", owner="alice")
    web.clock.now = T0 + 5
    first = await web.services.admin.add_grant(ADMIN, "eve", "secret", "incident 1", 600, web.clock())
    under_first = await _sign(client, web, "eve", media_id="secret")
    web.clock.now = T0 + 30.5
    await web.services.admin.revoke_grant(ADMIN, first.id, web.clock())
    assert await _verify(client, under_first["url"]) == 403
    web.clock.now = T0 + 32
    await web.services.admin.add_grant(ADMIN, "eve", "secret", "incident 2", 600, web.clock())
    under_second = await _sign(client, web, "eve", media_id="secret")
    assert _param(under_second["url"], "gw_iat") == T0 + 31
    assert await _verify(client, under_second["url"]) == 200


class TestWithTheWindowOff:
    @pytest.fixture
    def config(self, tmp_path: Path) -> Config:
        init_data_dir(tmp_path)
        text = (tmp_path / "gateway.toml").read_text().replace("cache_window = 60", "cache_window = 0")
        (tmp_path / "gateway.toml").write_text(text)
        return load_config(tmp_path, environ={})

    async def test_each_second_gets_its_own_url_living_exactly_its_ttl(self, client: TestClient, web: World) -> None:
        web.clock.now = T0 + 17.4
        first = await _sign(client, web, ttl=120)
        assert (_param(first["url"], "gw_iat"), first["expires_at"]) == (T0 + 17, T0 + 17 + 120)
        web.clock.now = T0 + 18
        assert (await _sign(client, web, ttl=120))["url"] != first["url"]
