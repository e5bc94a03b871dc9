"""Attack: a viewer whose name is part of the owner's (issue 17, "test gaps found by planting bugs").

Loosening the owner check from identity to a substring (a viewer ``ali`` counted as the owner of ``alice``'s item)
went unnoticed by the whole suite: every test's other viewer was ``bob`` or ``carol``. Through the API, with a
viewer token from the identity provider: a name that is part of the owner's, contains it, or differs only in case
is refused with ``not-permitted``, and the refusal is audited; ``alice`` herself is allowed as ``owner``.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.model import Permission, Visibility
from gateway.store.base import AuditQuery
from tests.support import World


async def _sign_for(client: TestClient, world: World, subject: str, *workspaces: str) -> tuple[int, dict[str, str]]:
    body = {"media_id": "m1", "rendition": "video", "viewer_token": world.viewer_token(subject, *workspaces)}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    return response.status, await response.json()


@pytest.mark.parametrize("subject", ["ali", "lice", "alice.smith", "xalice", "Alice"])
@pytest.mark.parametrize("visibility", [Visibility.PRIVATE, Visibility.WORKSPACE])
async def test_a_viewer_named_like_the_owner_is_not_the_owner(
    client: TestClient, world: World, subject: str, visibility: Visibility
) -> None:
    await world.principal("web", Permission.SIGN)
    await world.media("m1", owner="alice", workspace="w1", visibility=visibility)
    status, body = await _sign_for(client, world, subject, "w10", "w")
    assert (status, body["error"]) == (403, "forbidden"), body
    [denied] = await world.services.store.audit.search(AuditQuery(event="url:denied"))
    assert denied.reason == "not-permitted"
    status, body = await _sign_for(client, world, "alice")
    assert status == 200, body
    [issued] = await world.services.store.audit.search(AuditQuery(event="url:issued"))
    assert issued.reason == "owner"
