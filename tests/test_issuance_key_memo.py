"""The signing key remembered between calls (``gateway.signing.key_choice``): the key ``Keyring.signing_key`` would
choose afresh, every time.

A call used to choose its principal's key from the state view on every request (the keys listed, each one's
state, the secret looked up, two objects built: ≈ 5 µs of a single sign). The choice is now remembered per
principal and kind of profile while the view stays as it was (same view, same ``seq``), time has not gone back
and the key is still active. Held here to a fresh choice over random sequences of key creations, revocations,
expiries and clock moves (forwards and back), and to the attacks it must not let through: a key revoked, expired
or superseded between two calls is never used by the second.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.audit.records import RequestContext
from gateway.config import load_config
from gateway.errors import Forbidden
from gateway.keys.keyring import SigningChoice
from gateway.model import KeyAlgorithm, Permission
from gateway.services import Services, open_services
from tests.support import ADMIN, Clock, World, init_data_dir

CTX = RequestContext(actor="web")


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    init_data_dir(tmp_path)  # runs its own event loop: not from an async fixture
    return tmp_path


@pytest.fixture
async def services(initialised: Path, clock: Clock) -> AsyncIterator[Services]:
    opened = await open_services(load_config(initialised, environ={}), clock=clock)
    yield opened
    await opened.close()


async def _remembered(services: Services, now: float) -> SigningChoice | Forbidden:
    """The key a new call chooses (through the memo), or the refusal."""
    principal = services.state.view.principals["web"]
    try:
        return await services.issuer.keys.choose(principal.id, now, (None, False), {})
    except Forbidden as refused:
        return refused


async def _fresh(services: Services, now: float) -> SigningChoice | Forbidden:
    try:
        return await services.keyring.signing_key("web", now)
    except Forbidden as refused:
        return refused


def _same(a: SigningChoice | Forbidden, b: SigningChoice | Forbidden) -> bool:
    if isinstance(a, Forbidden) or isinstance(b, Forbidden):
        return isinstance(a, Forbidden) and isinstance(b, Forbidden) and a.code == b.code
    return a.row == b.row and a.material == b.material


@pytest.mark.parametrize("seed", range(6))
async def test_each_call_gets_the_key_a_fresh_choice_gives(services: Services, clock: Clock, seed: int) -> None:
    rng = random.Random(seed)
    await World(services, clock).principal("web", Permission.SIGN)
    kids: list[str] = []
    for _ in range(60):
        step = rng.random()
        if step < 0.15:
            not_after = clock() + rng.choice([1, 5, 30]) if rng.random() < 0.5 else None
            kids.append((await services.admin.create_key(ADMIN, "web", KeyAlgorithm.ED25519, clock(), not_after)).kid)
        elif step < 0.25 and kids:
            kid = rng.choice(kids)
            if services.state.view.keys[kid].revoked_at is None:
                await services.admin.revoke_key(ADMIN, kid, "leaked", clock())
        elif step < 0.35:
            clock.now -= rng.choice([1, 3])  # a clock stepped back
        else:
            clock.advance(rng.choice([0, 0.5, 1, 4, 10]))
        if rng.random() < 0.8:
            await services.state.catch_up()
        for _ in range(rng.randint(1, 3)):
            now = clock()
            assert _same(await _remembered(services, now), await _fresh(services, now))


async def test_a_key_revoked_between_two_calls_is_not_used_by_the_second(services: Services, clock: Clock) -> None:
    first = await World(services, clock).principal("web", Permission.SIGN)
    assert first is not None
    clock.advance(1)
    second = await services.admin.create_key(ADMIN, "web", KeyAlgorithm.ED25519, clock())
    await services.state.catch_up()
    assert (await _remembered(services, clock())).row.kid == second.kid  # type: ignore[union-attr]
    await services.admin.revoke_key(ADMIN, second.kid, "leaked", clock())
    await services.state.catch_up()
    assert (await _remembered(services, clock())).row.kid == first.kid  # type: ignore[union-attr]
    await services.admin.revoke_key(ADMIN, first.kid, "leaked", clock())
    await services.state.catch_up()
    assert isinstance(await _remembered(services, clock()), Forbidden)


async def test_a_key_that_expires_between_two_calls_is_not_used_by_the_second(services: Services, clock: Clock) -> None:
    """No change reaches the view when a key passes its ``not_after``: the memo checks the time itself."""
    await World(services, clock).principal("web", Permission.SIGN, key=None)
    older = await services.admin.create_key(ADMIN, "web", KeyAlgorithm.ED25519, clock())
    clock.advance(1)
    newer = await services.admin.create_key(ADMIN, "web", KeyAlgorithm.ED25519, clock(), clock() + 10)
    await services.state.catch_up()
    assert (await _remembered(services, clock())).row.kid == newer.kid  # type: ignore[union-attr]
    clock.advance(10)
    assert (await _remembered(services, clock())).row.kid == older.kid  # type: ignore[union-attr]


async def test_a_newer_key_signs_from_the_next_call(services: Services, clock: Clock) -> None:
    await World(services, clock).principal("web", Permission.SIGN)
    remembered = await _remembered(services, clock())
    clock.advance(1)
    rotated = await services.admin.rotate_key(ADMIN, "web", clock())
    await services.state.catch_up()
    assert (await _remembered(services, clock())).row.kid == rotated.kid != remembered.row.kid  # type: ignore[union-attr]


async def test_the_memo_is_bounded(services: Services, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.signing import key_choice

    monkeypatch.setattr(key_choice, "CHOICES", 3)
    world = World(services, clock)
    for n in range(5):
        await world.principal(f"p{n}", Permission.SIGN)
    await services.state.catch_up()
    for n in range(5):
        principal = services.state.view.principals[f"p{n}"]
        await services.issuer.keys.choose(principal.id, clock(), (None, False), {})
        assert len(services.issuer.keys) <= 3
