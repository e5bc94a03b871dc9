"""A viewer's audit key deleted or overwritten by hand is a verification failure, not a silent erasure
(issue 17, item 8; red team round 4, L1: overwritten).

Deleting one row of ``subject_keys`` makes that viewer's sealed audit fields
unreadable exactly as an erasure does, but with nothing on record. ``audit
verify`` fails naming the pseudonym and ``doctor`` reports it, on SQLite and
PostgreSQL; a viewer erased through ``subject erase`` stays fine, and a
hand-made ``erased_subjects`` row does not stand in for the erasure the log
records. A key overwritten (another viewer's sealed key, random bytes, a key
sealed for nobody) opens nothing either: ``audit verify`` opens each viewer's
first sealed record with the key held for them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.audit.checkpoints import load_public_keys
from gateway.audit.log import subject_key_context
from gateway.audit.privacy import new_subject_key
from gateway.audit.verify import verify_log
from gateway.cli.main import main as gatewayctl
from gateway.config import Config
from gateway.errors import StoreUnavailable
from gateway.services import open_services
from gateway.store import is_postgres
from gateway.store.base import AuditQuery
from tests.audit_support import fill, verify
from tests.support import ADMIN, Clock, World


@pytest.fixture
async def world(any_store_config: Config, clock: Clock) -> AsyncIterator[World]:
    """Viewers bob (keyed) and carol (erased), their records under a signed checkpoint."""
    config = any_store_config
    services = await open_services(config, clock)
    world = World(services, clock)
    await fill(world, 3, viewer="bob", media="m-bob")
    await fill(world, 2, viewer="carol", media="m-carol")
    await fill(world, 2, viewer="dave", media="m-dave")
    await services.subjects.erase(ADMIN, "carol", "GDPR request 12", clock())
    await services.checkpointer.write(clock())
    try:
        yield world
    finally:
        await services.close()


async def _sql(world: World, statement: str, *args: object) -> None:
    """What an operator with database access does by hand, outside the gateway."""
    config = world.services.config
    if is_postgres(config):
        conn = await asyncpg.connect(config.database_url)
        try:
            parts = statement.split("?")  # asyncpg numbers its placeholders
            await conn.execute(parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1)), *args)
        finally:
            await conn.close()
    else:
        with sqlite3.connect(config.sqlite_path) as conn:
            conn.execute(statement, args)


async def _first_sealed(world: World, subject: str) -> tuple[str, int]:
    ref = world.services.audit_log.ref(subject)
    records = await world.services.store.audit.search(AuditQuery(subject=ref, limit=100))
    return ref, min(r.seq for r in records if r.personal is not None and r.seq is not None)


def _problem(ref: str, first: int) -> str:
    return (
        f"subject {ref}: its audit key is missing and the log records no erasure (no subject:erased): "
        f"the personal fields of record #{first} and later are unreadable (subject_keys altered by hand?)"
    )


def _not_opened(ref: str, first: int) -> str:
    return (
        f"subject {ref}: its audit key does not open its sealed fields (record #{first} and later are unreadable; "
        "subject_keys altered by hand?)"
    )


async def _cli(capsys: pytest.CaptureFixture[str], world: World, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(gatewayctl, [*argv, "--data-dir", str(world.services.config.data_dir)])
    return code, capsys.readouterr().out


async def test_an_erased_viewer_and_a_keyed_one_verify(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert (await verify(world.services)).ok
    _, out = await _cli(capsys, world, "doctor")
    assert "ok   subject keys: every sealed audit field has its key, or its subject's erasure on record" in out


async def test_a_subject_key_deleted_by_hand_fails_verify_and_doctor(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, first = await _first_sealed(world, "bob")
    await _sql(world, "DELETE FROM subject_keys WHERE ref = ?", ref)
    report = await verify(world.services)
    assert (report.ok, report.first_bad, report.problem) == (False, first, _problem(ref, first))
    code, out = await _cli(capsys, world, "audit", "verify")
    assert (code, out) == (1, f"FAILED at record #{first}: {_problem(ref, first)}\n")
    code, out = await _cli(capsys, world, "doctor")
    assert code == 1
    assert (
        f"FAIL subject keys: audit key missing with no erasure on record (subject_keys altered by hand?): "
        f"{ref} (from record #{first}); their personal fields are unreadable: restore the keys from a backup"
    ) in out.splitlines()


async def test_a_hand_made_erasure_row_does_not_stand_in_for_the_recorded_erasure(world: World) -> None:
    ref, first = await _first_sealed(world, "bob")
    await _sql(world, "DELETE FROM subject_keys WHERE ref = ?", ref)
    await _sql(world, "INSERT INTO erased_subjects (ref, erased_at) VALUES (?, 1.0)", ref)
    report = await verify(world.services)
    assert (report.ok, report.problem) == (False, _problem(ref, first))


@pytest.mark.parametrize(
    "replacement", ["another viewer's key", "random bytes", "a truncated key", "a new key sealed for this viewer"]
)
async def test_a_subject_key_overwritten_by_hand_fails_verify(
    world: World, capsys: pytest.CaptureFixture[str], replacement: str
) -> None:
    ref, first = await _first_sealed(world, "bob")
    own = await world.services.store.subjects.sealed_key(ref)
    dave = await world.services.store.subjects.sealed_key(world.services.audit_log.ref("dave"))
    assert own is not None and dave is not None
    new = await world.services.master_key.seal(new_subject_key(), subject_key_context(ref))  # the master key's holder
    overwrite = {"another viewer's key": dave, "random bytes": os.urandom(len(own)), "a truncated key": own[:-1],
                 "a new key sealed for this viewer": new}  # fmt: skip
    await _sql(world, "UPDATE subject_keys SET sealed_key = ? WHERE ref = ?", overwrite[replacement], ref)
    report = await verify(world.services)
    assert (report.ok, report.first_bad, report.problem) == (False, first, _not_opened(ref, first))
    code, out = await _cli(capsys, world, "audit", "verify")
    assert (code, out) == (1, f"FAILED at record #{first}: {_not_opened(ref, first)}\n")


async def test_without_a_master_key_the_keys_are_checked_to_exist_and_that_is_said(world: World) -> None:
    keys = load_public_keys([world.services.config.log_signing_key_path.with_suffix(".pub")])
    report = await verify_log(world.services.store, keys, world.services.config.export_dir, now=world.clock())
    assert report.ok
    assert "subject keys checked to exist, not to open their records (no master key given)" in report.notes


async def test_a_viewer_asking_again_after_their_erasure_is_not_taken_for_tampering(world: World) -> None:
    """After an erasure, a new record about the viewer (the refusal of their next request) is sealed under a new
    key: the old records stay unreadable, as erasure intends, and verify holds the new key to the new records."""
    await fill(world, 1, viewer="carol", media="m-carol")  # refused: this viewer's data has been erased
    ref = world.services.audit_log.ref("carol")
    [refusal] = await world.services.store.audit.search(AuditQuery(subject=ref, event="url:denied"))
    assert refusal.personal is not None  # sealed...
    assert await world.services.audit_log.reveal(refusal) is not None  # ...under a new key, which opens it
    assert (await verify(world.services)).ok


@pytest.mark.parametrize("any_store_config", ["sqlite"], indirect=True)  # PostgreSQL's bytea holds bytes only
@pytest.mark.parametrize("value", ["'abc'", "-1", "1.5", "3000000000", "x'02'", "x''"])
async def test_a_subject_key_of_the_wrong_type_or_shape_is_reported_not_a_crash(world: World, value: str) -> None:
    """SQLite keeps whatever is written into a column: text, numbers, a blob too short to be sealed."""
    ref, first = await _first_sealed(world, "bob")
    await _sql(world, f"UPDATE subject_keys SET sealed_key = {value} WHERE ref = ?", ref)  # noqa: S608
    report = await verify(world.services)
    assert (report.ok, report.first_bad, report.problem) == (False, first, _not_opened(ref, first))


async def test_a_key_of_the_wrong_length_sealed_for_the_viewer_is_reported_not_a_crash(world: World) -> None:
    ref, first = await _first_sealed(world, "bob")
    short = await world.services.master_key.seal(b"\x01" * 5, subject_key_context(ref))  # no AES key's length
    await _sql(world, "UPDATE subject_keys SET sealed_key = ? WHERE ref = ?", short, ref)
    report = await verify(world.services)
    assert (report.ok, report.first_bad, report.problem) == (False, first, _not_opened(ref, first))
    records = await world.services.store.audit.search(AuditQuery(subject=ref, limit=1))
    assert await world.services.audit_log.reveal(records[0]) is None  # an export shows it unreadable, no crash


async def test_a_pepper_deleted_by_hand_stops_the_gateway_rather_than_hiding_every_viewer(world: World) -> None:
    """A new pepper would give every viewer a new pseudonym: their records could no longer be found, exported or
    erased, while the log still verified. Opening the gateway refuses instead, naming what to restore."""
    await _sql(world, "DELETE FROM meta WHERE key = ?", "audit_pepper")
    with pytest.raises(StoreUnavailable, match=r"^the audit log's pepper \(meta row audit_pepper\) is missing while"):
        await open_services(world.services.config, world.clock)
