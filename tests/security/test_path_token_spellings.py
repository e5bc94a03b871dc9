"""Attack: a native path token (``/_t/<token>/v/a/…``) opens more than its prefix through a spelling in or around
its segment, or through a second token beside it.

A viewer holds the path token for the unlisted item ``a`` (``/v/a/``) and asks
for the private item ``other`` (``/v/other/``) or the file of no item at all:
dot segments after the token, an empty segment, an escaped marker, a doubled
token segment (nginx strips one, the origin would read the other), a second
spelling of the token itself, a token edited to another prefix, or a query
token beside it. Each is refused through ``/v1/verify`` with the exact reason,
and the claims are about the path after the token: link revocations are
looked up by it, and a remembered decision is never reused outside it.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.keys.material import b64url, b64url_decode
from gateway.model import Permission, Visibility
from tests.security.test_path_escape import verify
from tests.support import ADMIN, World


@pytest.fixture
async def token(world: World, client: TestClient) -> str:
    """The token segment bob holds for /v/a/ (unlisted); /v/other/ is someone's private item."""
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("a", visibility=Visibility.UNLISTED)
    await world.media("other")
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "scope": "prefix", "form": "path"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    url = (await response.json())["url"]
    assert url.startswith("https://cdn.example.com/_t/") and url.endswith("/v/a/master.m3u8"), url
    return str(url.split("/")[4])


async def _verify(client: TestClient, caplog: pytest.LogCaptureFixture, uri: str) -> tuple[int, str]:
    """(status, logged refusal reason) of /v1/verify, asked as nginx asks it."""
    return await verify(client, caplog, uri, "native")


def _text(token: str) -> str:
    return b64url_decode(token).decode()


def _respelled(token: str, text: str) -> str:
    return b64url(text.encode())


def attacks(token: str) -> dict[str, tuple[str, str]]:
    """name -> (the URI presented, the exact refusal reason)."""
    text = _text(token)
    query_form = text  # the very parameters, as a query token
    reordered = "&".join(sorted(text.split("&")))
    no_prefix = "&".join(p for p in text.split("&") if not p.startswith("gw_pfx="))
    wider = text.replace("gw_pfx=/v/a/", "gw_pfx=/v/")
    padded = token + ("=" * (-len(token) % 4) or "==")  # the padding base64 would have, or padding where none fits
    return {
        "dot-dot after the token": (f"/_t/{token}/v/a/../other/master.m3u8", "non-canonical-path"),
        "dot-dot right after the token": (f"/_t/{token}/../v/other/master.m3u8", "non-canonical-path"),
        "encoded dot-dot": (f"/_t/{token}/v/a/%2e%2e/other/master.m3u8", "non-canonical-path"),
        "dot segment": (f"/_t/{token}/v/a/./seg-1.ts", "non-canonical-path"),
        "empty segment after the token": (f"/_t/{token}//v/a/seg-1.ts", "non-canonical-path"),
        "empty token segment": ("/_t//v/a/seg-1.ts", "non-canonical-path"),
        "escaped marker": (f"/%5Ft/{token}/v/a/seg-1.ts", "non-canonical-path"),
        "escaped character in the token": (f"/_t/%{ord(token[0]):02X}{token[1:]}/v/a/seg-1.ts", "non-canonical-path"),
        "encoded slash after the token": (f"/_t/{token}%2Fv/a/seg-1.ts", "non-canonical-path"),
        "dot token segment": ("/_t/../v/a/seg-1.ts", "non-canonical-path"),
        "path parameter": (f"/_t/{token};x=1/v/a/seg-1.ts", "non-canonical-path"),
        "doubled token segment": (f"/_t/{token}/_t/{token}/v/a/seg-1.ts", "malformed"),
        "second token for another path": (f"/_t/{token}/_t/x/v/other/master.m3u8", "malformed"),
        "upper-case marker": (f"/_T/{token}/v/a/seg-1.ts", "malformed"),
        "no path after the token": (f"/_t/{token}", "malformed"),
        "padded token": (f"/_t/{padded}/v/a/seg-1.ts", "malformed"),
        "reordered parameters": (f"/_t/{_respelled(token, reordered)}/v/a/seg-1.ts", "malformed"),
        "trailing ampersand": (f"/_t/{_respelled(token, text + '&')}/v/a/seg-1.ts", "malformed"),
        "unknown parameter": (f"/_t/{_respelled(token, text + '&gw_x=1')}/v/a/seg-1.ts", "malformed"),
        "no gw_pfx (not a prefix token)": (f"/_t/{_respelled(token, no_prefix)}/v/a/seg-1.ts", "malformed"),
        "not base64url": (f"/_t/{token[:-1]}!/v/a/seg-1.ts", "malformed"),
        "path token and query token together": (f"/_t/{token}/v/a/seg-1.ts?{query_form}", "malformed"),
        "path token and a stray gw_ parameter": (f"/_t/{token}/v/a/seg-1.ts?gw_exp=1", "malformed"),
        "token moved to another item": (f"/_t/{token}/v/other/master.m3u8", "outside-prefix"),
        "token moved to a sibling prefix": (f"/_t/{token}/v/ab/master.m3u8", "outside-prefix"),
        "token at the root": (f"/_t/{token}/", "outside-prefix"),
        "prefix widened in the token": (f"/_t/{_respelled(token, wider)}/v/other/master.m3u8", "bad-signature"),
    }


async def test_the_token_opens_its_directory_and_nothing_else_in_any_spelling(
    client: TestClient, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    for path in ("/v/a/master.m3u8", "/v/a/seg-001.ts", "/v/a/720p/seg-001.ts", "/v/a/seg-001.ts?_HLS_msn=1"):
        assert await _verify(client, caplog, f"/_t/{token}{path}") == (200, ""), path
    tried = attacks(token)
    refused = {name: await _verify(client, caplog, uri) for name, (uri, _) in tried.items()}
    assert refused == {name: (403, reason) for name, (_, reason) in tried.items()}


async def test_a_query_token_cannot_be_presented_behind_a_made_up_token_segment(
    world: World, client: TestClient, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "scope": "prefix"}
    url = (await (await client.post("/v1/sign", json=body, headers=world.auth("web"))).json())["url"]
    query = url.split("?", 1)[1]
    assert await _verify(client, caplog, f"/v/a/seg-1.ts?{query}") == (200, "")
    assert await _verify(client, caplog, f"/_t/x/v/a/seg-1.ts?{query}") == (403, "malformed")
    assert await _verify(client, caplog, f"/_t/{token}/v/a/seg-1.ts?{query}") == (403, "malformed")


async def test_a_link_revocation_stops_path_tokens_looked_up_by_the_path_after_the_token(
    world: World, client: TestClient, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    assert await _verify(client, caplog, f"/_t/{token}/v/a/seg-1.ts") == (200, "")
    world.clock.advance(5)
    await world.services.admin.revoke_links(ADMIN, "a", "leaked", world.clock())
    assert await _verify(client, caplog, f"/_t/{token}/v/a/seg-1.ts") == (403, "links-revoked")
    assert await _verify(client, caplog, f"/_t/{token}/v/a/seg-2.ts") == (403, "links-revoked")


async def test_a_remembered_decision_never_opens_another_directory(
    client: TestClient, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    assert await _verify(client, caplog, f"/_t/{token}/v/a/seg-1.ts") == (200, "")  # remembered for /v/a/
    assert await _verify(client, caplog, f"/_t/{token}/v/other/seg-1.ts") == (403, "outside-prefix")
