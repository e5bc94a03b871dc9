"""Group commit: concurrent requests share commits, each gets its own positions, failures fail the whole group."""

from __future__ import annotations

import asyncio

import pytest

from gateway.audit.log import AuditBatcher, Pending
from gateway.audit.records import VIEWER, AuditEvent, AuditRecord
from gateway.errors import AuditUnavailable
from gateway.services import Services


def _pending(i: int) -> Pending:
    record = AuditRecord(float(i), AuditEvent.URL_ISSUED, "web", subject=f"viewer{i % 3}", retention=VIEWER,
                         detail={"i": i})  # fmt: skip
    return Pending([record], float(i))


async def test_concurrent_submits_share_few_commits_and_get_distinct_positions(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    real = services.store.append_audit_group

    async def counting(records, raw, touches, at):  # type: ignore[no-untyped-def]
        commits.append(len(records))
        return await real(records, raw, touches, at)

    monkeypatch.setattr(services.store, "append_audit_group", counting)
    batcher = AuditBatcher(services.store, services.audit_log)
    before = (await services.store.audit.frontier()).size
    results = await asyncio.gather(*(batcher.submit(_pending(i)) for i in range(50)))
    assert sorted(seq for [seq] in results) == list(range(before + 1, before + 51))
    assert sum(commits) == 50 and len(commits) <= 3
    entries = await services.store.audit.entries(before, 100)
    assert [e.record.detail["i"] for e in entries if e.record] == [  # each caller's record is at its own position
        i for _, i in sorted((seq, i) for i, [seq] in enumerate(results))
    ]


async def test_a_failed_commit_fails_every_request_in_its_group_and_the_next_group_recovers(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = services.store.append_audit_group
    failing = True

    async def flaky(records, raw, touches, at):  # type: ignore[no-untyped-def]
        if failing:
            raise AuditUnavailable("disk full")
        return await real(records, raw, touches, at)

    monkeypatch.setattr(services.store, "append_audit_group", flaky)
    batcher = AuditBatcher(services.store, services.audit_log)
    outcomes = await asyncio.gather(*(batcher.submit(_pending(i)) for i in range(10)), return_exceptions=True)
    assert all(isinstance(o, AuditUnavailable) for o in outcomes)
    failing = False
    assert len(await batcher.submit(_pending(99))) == 1


async def test_two_processes_meeting_a_new_viewer_at_once_share_one_subject_key(services: Services) -> None:
    from gateway.audit.log import AuditLog
    from gateway.store.sqlite import SqliteStore

    other_store = await SqliteStore.open(services.config.sqlite_path)
    other_log = await AuditLog.open(other_store, services.master_key)
    try:
        mine, theirs = await asyncio.gather(
            services.audit_log.prepare_standalone([_pending(3).records[0]], 3.0),
            other_log.prepare_standalone([_pending(3).records[0]], 3.0),
        )
        assert mine[0].subject == theirs[0].subject and mine[0].subject.startswith("sub_")  # type: ignore[union-attr]
        for record in (mine[0], theirs[0]):  # sealed under the one key both now hold
            assert (await services.audit_log.reveal(record)) == {"subject": "viewer0", "client_ip": None,
                                                                 "user_agent": None}  # fmt: skip
    finally:
        await other_store.close()


async def test_a_subject_key_made_in_a_rolled_back_transaction_seals_nothing_later(services: Services) -> None:
    log = services.audit_log
    with pytest.raises(RuntimeError):
        async with services.store.transaction() as tx:
            await log.append(tx, [_pending(4).records[0]], 4.0)  # creates viewer1's key inside tx
            raise RuntimeError("the change this record belonged to failed")
    [sealed] = await log.prepare_standalone([_pending(4).records[0]], 5.0)
    assert (await log.reveal(sealed)) == {"subject": "viewer1", "client_ip": None, "user_agent": None}
