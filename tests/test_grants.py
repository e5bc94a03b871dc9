"""Access grants (``gateway.admin.grants``): who may get one, for how long, and the audit record of each change.

tests/security/test_grant_end.py shows that a URL ends with its grant; these pin the administration itself with
exact refusals and records (tools/mutate.py, docs/mutation-testing.md).
"""

from __future__ import annotations

import pytest

from gateway.admin.grants import MAX_GRANT_SECONDS
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.model import Permission, PrincipalKind
from gateway.store.base import AuditQuery
from tests.support import ADMIN, World


@pytest.fixture
async def eve(world: World) -> World:
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.media("m1")
    return world


async def test_a_grant_lasts_its_duration_from_now_with_its_reason_trimmed(eve: World) -> None:
    now = eve.clock()
    grant = await eve.services.admin.add_grant(ADMIN, "eve", "m1", "  ticket 42 \n", 600, now)
    assert grant.id.startswith("gwg_")
    assert (grant.principal_id, grant.media_id, grant.reason, grant.created_by) == ("eve", "m1", "ticket 42",
                                                                                   ADMIN.actor)  # fmt: skip
    assert (grant.created_at, grant.expires_at, grant.revoked_at) == (now, now + 600, None)
    stored = await eve.services.store.grants.get(grant.id)
    assert stored == grant
    [record] = await eve.services.store.audit.search(AuditQuery(event="grant:created"))
    assert (record.actor, record.media_id, record.reason) == (ADMIN.actor, "m1", "ticket 42")
    assert record.detail == {"grant_id": grant.id, "principal": "eve", "expires_at": now + 600}


@pytest.mark.parametrize("duration", [MAX_GRANT_SECONDS, 0.5])
async def test_a_grant_may_last_up_to_a_week(eve: World, duration: float) -> None:
    grant = await eve.services.admin.add_grant(ADMIN, "eve", "m1", "r", duration, eve.clock())
    assert grant.expires_at - grant.created_at == duration


@pytest.mark.parametrize("duration", [0, -1, MAX_GRANT_SECONDS + 1])
async def test_a_grant_of_no_time_or_longer_than_a_week_is_refused(eve: World, duration: float) -> None:
    with pytest.raises(InvalidInput, match=rf"^a grant lasts at most {MAX_GRANT_SECONDS} seconds$"):
        await eve.services.admin.add_grant(ADMIN, "eve", "m1", "r", duration, eve.clock())
    assert MAX_GRANT_SECONDS == 7 * 86400


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
async def test_a_grant_needs_a_reason(eve: World, reason: str) -> None:
    with pytest.raises(InvalidInput, match=r"^an access grant needs a reason$"):
        await eve.services.admin.add_grant(ADMIN, "eve", "m1", reason, 600, eve.clock())


async def test_grants_are_for_engineers_and_for_items_that_exist(eve: World) -> None:
    admin = eve.services.admin
    await eve.principal("svc", Permission.SIGN)
    with pytest.raises(InvalidInput, match=r"^access grants are for engineers$"):
        await admin.add_grant(ADMIN, "svc", "m1", "r", 600, eve.clock())
    with pytest.raises(NotFound, match=r"^no media item 'nope'$"):
        await admin.add_grant(ADMIN, "eve", "nope", "r", 600, eve.clock())
    await admin.delete_media(ADMIN, "m1", eve.clock())
    with pytest.raises(NotFound, match=r"^no media item 'm1'$"):
        await admin.add_grant(ADMIN, "eve", "m1", "r", 600, eve.clock())
    with pytest.raises(NotFound):
        await admin.add_grant(ADMIN, "nobody", "m1", "r", 600, eve.clock())
    assert await eve.services.store.audit.search(AuditQuery(event="grant:created")) == []


async def test_revoking_a_grant_once_is_recorded_and_twice_is_a_conflict(eve: World) -> None:
    admin = eve.services.admin
    grant = await admin.add_grant(ADMIN, "eve", "m1", "r", 600, eve.clock())
    eve.clock.advance(5)
    await admin.revoke_grant(ADMIN, grant.id, eve.clock())
    stored = await eve.services.store.grants.get(grant.id)
    assert stored is not None and stored.revoked_at == eve.clock()
    [record] = await eve.services.store.audit.search(AuditQuery(event="grant:revoked"))
    assert (record.actor, record.media_id, record.detail) == (ADMIN.actor, "m1", {"grant_id": grant.id,
                                                                                 "principal": "eve"})  # fmt: skip
    with pytest.raises(Conflict, match=rf"^grant {grant.id} was already revoked$"):
        await admin.revoke_grant(ADMIN, grant.id, eve.clock())
    with pytest.raises(NotFound, match=r"^no grant 'gwg_nope'$"):
        await admin.revoke_grant(ADMIN, "gwg_nope", eve.clock())
    assert len(await eve.services.store.audit.search(AuditQuery(event="grant:revoked"))) == 1
