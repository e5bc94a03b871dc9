"""GET /m/{media_id}/{rendition}: the stable page URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.model import Rendition, Visibility
from gateway.signing.dialects.native import token_params
from tests.support import ADMIN, World, init_data_dir


@pytest.fixture
async def pages(world: World) -> World:
    await world.media("m1")
    await world.media("shared", visibility=Visibility.WORKSPACE)
    return world


async def _get(client: TestClient, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return await client.get(path, allow_redirects=False, **kwargs)


async def test_owner_is_redirected_to_a_fresh_signed_url(client: TestClient, pages: World) -> None:
    headers = {"Authorization": f"Bearer {pages.viewer_token('alice')}"}
    first = await _get(client, "/m/m1/video", headers=headers)
    assert first.status == 302
    assert first.headers["Cache-Control"] == "no-store"
    assert first.headers["Location"].startswith("https://cdn.example.com/v/m1/master.m3u8?gw_exp=")
    pages.clock.advance(5)  # the same cache window (signing.cache_window): the same URL, for the browser's cache
    second = await _get(client, "/m/m1/video", headers=headers)
    assert second.headers["Location"] == first.headers["Location"]
    pages.clock.advance(60)  # the next window: a fresh one
    third = await _get(client, "/m/m1/video", headers=headers)
    assert third.headers["Location"] != first.headers["Location"]


async def test_viewer_token_from_cookie(client: TestClient, pages: World) -> None:
    cookie = pages.services.config.viewer.cookie
    response = await _get(client, "/m/shared/thumbnail", cookies={cookie: pages.viewer_token("bob", "w1")})
    assert response.status == 302
    assert "/t/shared.jpg?" in response.headers["Location"]


async def test_no_token_is_401(client: TestClient, pages: World) -> None:
    response = await _get(client, "/m/m1/video")
    assert response.status == 401
    assert (await response.json())["error"] == "unauthenticated"


async def test_forbidden_and_missing_both_answer_404(client: TestClient, pages: World) -> None:
    headers = {"Authorization": f"Bearer {pages.viewer_token('mallory')}"}
    forbidden = await _get(client, "/m/m1/video", headers=headers)
    missing = await _get(client, "/m/nope/video", headers=headers)
    assert forbidden.status == missing.status == 404
    assert (await forbidden.json())["error"] == (await missing.json())["error"] == "not_found"


async def test_deleted_item_answers_404(client: TestClient, pages: World) -> None:
    await pages.services.admin.delete_media(ADMIN, "m1", pages.clock())
    headers = {"Authorization": f"Bearer {pages.viewer_token('alice')}"}
    assert (await _get(client, "/m/m1/video", headers=headers)).status == 404


async def test_unknown_rendition_is_404(client: TestClient, pages: World) -> None:
    headers = {"Authorization": f"Bearer {pages.viewer_token('alice')}"}
    assert (await _get(client, "/m/m1/poster", headers=headers)).status == 404


async def test_expired_viewer_token_is_401(client: TestClient, pages: World) -> None:
    token = pages.viewer_token("alice", ttl=60)
    pages.clock.advance(600)
    assert (await _get(client, "/m/m1/video", headers={"Authorization": f"Bearer {token}"})).status == 401


async def test_a_disabled_pages_principal_fails_closed_alike_for_every_item(client: TestClient, pages: World) -> None:
    """A deployment fault: 503 for an existing item and a missing one alike (a difference would reveal items)."""
    await pages.services.admin.disable_principal(ADMIN, "pages", pages.clock())
    headers = {"Authorization": f"Bearer {pages.viewer_token('alice')}"}
    existing = await _get(client, "/m/m1/video", headers=headers)
    missing = await _get(client, "/m/nothing/video", headers=headers)
    assert existing.status == missing.status == 503 and "Location" not in existing.headers
    assert (
        await existing.json()
        == await missing.json()
        == {"error": "unavailable", "message": "the pages principal 'pages' cannot sign (principal-disabled)"}
    )


class TestPathTokenPages:
    """``[pages] scope = "prefix"`` and ``form = "path"``: the page URL answers a path token for the item's own
    directory (what gateway-player.js renews from), and the file alone where there is no such directory."""

    @pytest.fixture
    def config(self, tmp_path: Path) -> Config:
        init_data_dir(tmp_path)
        with (tmp_path / "gateway.toml").open("a") as toml:
            toml.write('\n[pages]\nscope = "prefix"\nform = "path"\n')
        return load_config(tmp_path, environ={})

    async def test_a_video_page_url_redirects_to_a_path_token_and_a_thumbnail_to_its_file(
        self, client: TestClient, pages: World
    ) -> None:
        headers = {"Authorization": f"Bearer {pages.viewer_token('alice')}"}
        video = (await _get(client, "/m/m1/video", headers=headers)).headers["Location"]
        token = video.split("/")[4]
        assert video == f"https://cdn.example.com/_t/{token}/v/m1/master.m3u8"
        assert token_params(token)["gw_pfx"] == "/v/m1/"
        segment = video.removeprefix("https://cdn.example.com").replace("master.m3u8", "seg-9.ts")
        assert (await client.get("/v1/verify", headers={"X-Original-URI": segment})).status == 200
        thumbnail = (await _get(client, "/m/m1/thumbnail", headers=headers)).headers["Location"]
        assert thumbnail.startswith("https://cdn.example.com/t/m1.jpg?gw_exp=") and "gw_pfx" not in thumbnail

    async def test_a_video_without_a_directory_of_its_own_gets_its_file_alone(
        self, client: TestClient, pages: World
    ) -> None:
        """A progressive MP4 among others (/media/x.mp4): a prefix token would open the other items' files."""
        paths = {Rendition.VIDEO: "/media/x.mp4"}
        await pages.services.admin.put_media(ADMIN, "x", "alice", "w1", Visibility.PRIVATE, paths, pages.clock())
        headers = {"Authorization": f"Bearer {pages.viewer_token('alice')}"}
        video = (await _get(client, "/m/x/video", headers=headers)).headers["Location"]
        assert video.startswith("https://cdn.example.com/media/x.mp4?gw_exp=") and "gw_pfx" not in video


def test_a_path_token_page_needs_the_prefix_scope(tmp_path: Path) -> None:
    init_data_dir(tmp_path)
    with (tmp_path / "gateway.toml").open("a") as toml:
        toml.write('\n[pages]\nform = "path"\n')
    with pytest.raises(ConfigError, match=r'pages\.form = "path" needs pages\.scope = "prefix"'):
        load_config(tmp_path, environ={})
