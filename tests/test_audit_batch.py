"""A batch is one audit record (issue 18, decision 3): POST /v1/sign/batch over HTTP on both stores.

Each URL of the batch stays findable by key, media and URL digest (through the child rows, ``audit_urls``), in
the incident report, by outsider-use detection and in the subject's export; erasure shreds the batch's personal
fields; pruning takes its child rows; ``audit verify`` checks the child rows against the records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from gateway.audit.forensics import incident_report
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext
from gateway.audit.retention import DAY, prune
from gateway.cli.main import main as gatewayctl
from gateway.config import Config
from gateway.model import Permission, Visibility
from gateway.netaddr import mask_ip, mask_network
from gateway.services import Services, open_services
from gateway.store import is_postgres
from gateway.store.base import AuditQuery
from gateway.web.app import create_app
from tests.audit_support import verify
from tests.support import ADMIN, Clock, World

VIEWER_IP = "198.51.100.23"
BOUND = "192.0.2.7"
FORGED = "'ab', 'm1', 'video', 1, 'gwk_x'"  # a child row's values after (seq, position): a URL never issued
ITEMS = [
    {"media_id": "m1", "rendition": "video"},
    {"media_id": "m2", "rendition": "thumbnail", "client_ip": BOUND},
    {"media_id": "pub", "rendition": "thumbnail"},
]


@dataclass
class Gateway:
    world: World
    client: TestClient
    kid: str

    @property
    def services(self) -> Services:
        return self.world.services

    async def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run ``statement`` on the store behind the gateway's back (an attacker with database access)."""
        config = self.services.config
        if is_postgres(config):
            conn = await asyncpg.connect(config.database_url)
            try:
                return [tuple(r) for r in await conn.fetch(statement)]
            finally:
                await conn.close()
        with sqlite3.connect(config.sqlite_path, isolation_level=None) as db:
            return db.execute(statement).fetchall()


@pytest.fixture
async def gw(any_store_config: Config, clock: Clock, aiohttp_client) -> AsyncIterator[Gateway]:  # type: ignore[no-untyped-def]
    services = await open_services(any_store_config, clock)
    world = World(services, clock)
    key = await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    assert key is not None
    await world.media("m1", owner="alice")
    await world.media("m2", owner="alice")
    await world.media("pub", owner="carol", visibility=Visibility.PUBLIC)
    client = await aiohttp_client(create_app(services, close_services=False))
    try:
        yield Gateway(world, client, key.kid)
    finally:
        await client.close()
        await services.close()


async def _batch(gw: Gateway, items: list[dict[str, Any]] = ITEMS, viewer: str = "alice") -> list[dict[str, Any]]:
    body = {"items": items, "viewer": {"id": viewer}, "viewer_ip": VIEWER_IP}
    response = await gw.client.post("/v1/sign/batch", json=body, headers=gw.world.auth("web"))
    assert response.status == 200
    results: list[dict[str, Any]] = (await response.json())["results"]
    return results


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


async def _issuance_records(gw: Gateway) -> list[AuditRecord]:
    found = await gw.services.store.audit.tail(50)
    return [r for r in found if r.event in (AuditEvent.URL_ISSUED, AuditEvent.URL_ISSUED_BATCH, AuditEvent.URL_DENIED)]


async def test_a_batch_of_three_is_one_record_listing_every_url(gw: Gateway) -> None:
    results = await _batch(gw)
    [record] = await _issuance_records(gw)
    assert record.event is AuditEvent.URL_ISSUED_BATCH
    assert (record.kid, record.media_id, record.url_sha256, record.decision) == (None, None, None, "allow")
    assert [(u["url_sha256"], u["media_id"], u["rendition"], u["expires_at"], u["kid"], u["issuance_id"])
            for u in record.detail["urls"]] == [
        (_digest(r["url"]), r["media_id"], r["rendition"], r["expires_at"], gw.kid, r["issuance_id"]) for r in results
    ]  # fmt: skip
    assert [u["reason"] for u in record.detail["urls"]] == ["owner", "owner", "public"]
    # Personal fields sealed once for the batch: the subject is a pseudonym, the networks are not in the clear.
    assert record.subject is not None and record.subject.startswith("sub_") and record.personal is not None
    assert record.client_ip is None and "bound_to" not in record.detail and "viewer_network" not in record.detail
    assert await gw.services.store.audit.urls(0, None) == [
        (record.seq, i, _digest(r["url"]), r["media_id"], r["rendition"], r["expires_at"], gw.kid)
        for i, r in enumerate(results)
    ]
    assert (await verify(gw.services)).ok


async def test_each_url_of_a_batch_is_found_by_key_media_and_digest(gw: Gateway) -> None:
    results = await _batch(gw)
    [record] = await _issuance_records(gw)
    search = gw.services.store.audit.search
    issued = "url:issued_batch"
    for query in (AuditQuery(kid=gw.kid, event=issued), AuditQuery(media_id="m2", event=issued),
                  AuditQuery(url_sha256=_digest(results[2]["url"])), AuditQuery(kid=gw.kid, media_id="pub"),
                  AuditQuery(subject=record.subject, event=issued),
                  AuditQuery(kid=gw.kid, event="url:issued")):  # url:issued includes batches  # fmt: skip
        assert [r.seq for r in await search(query)] == [record.seq], query
    # Beside the records of their own that name the key or item (its creation, the item's put), in order.
    assert [r.event.value for r in await search(AuditQuery(kid=gw.kid))] == ["key:created", issued]
    assert [r.event.value for r in await search(AuditQuery(media_id="m1"))] == ["media:put", issued]
    assert [r.event.value for r in await search(AuditQuery(media_id="m1", limit=1))] == ["media:put"]
    for query in (AuditQuery(media_id="nowhere"), AuditQuery(kid=gw.kid, event="url:denied"),
                  AuditQuery(kid=gw.kid, after_seq=record.seq or 0), AuditQuery(url_sha256="0" * 64)):  # fmt: skip
        assert await search(query) == [], query


async def test_audit_search_by_url_digest_shows_the_matching_url_of_a_batch(
    gw: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    results = await _batch(gw)
    digest = _digest(results[1]["url"])
    argv = ["--data-dir", str(gw.services.config.data_dir), "audit", "search", "--url-digest", digest]
    assert await asyncio.to_thread(gatewayctl, argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "url:issued_batch" in lines[0] and lines[0].endswith("urls=3")
    assert lines[1:] == [
        f"  [1] url_sha256={digest} media_id=m2 rendition=thumbnail expires_at={results[1]['expires_at']} kid={gw.kid}"
    ]
    assert await asyncio.to_thread(gatewayctl, [*argv, "--json"]) == 0
    [found] = json.loads(capsys.readouterr().out)
    assert (found["event"], found["matched"]) == ("url:issued_batch", [1])
    assert await asyncio.to_thread(gatewayctl, [*argv[:-1], "abc"]) == 2
    assert "--url-digest must be a SHA-256 in hex" in capsys.readouterr().err


async def test_the_incident_report_lists_every_url_of_a_batch(gw: Gateway) -> None:
    results = await _batch(gw)
    report = await incident_report(gw.services.store, gw.services.audit_log, gw.kid, None)
    found = [(u["event"], u["position"], u["url_sha256"], u["media_id"], u["expires_at"]) for u in report["issuances"]]
    assert found == [
        ("url:issued_batch", i, _digest(r["url"]), r["media_id"], r["expires_at"]) for i, r in enumerate(results)
    ]
    # The personal fields, revealed once for the batch: the caller's network, the viewer's, each URL's binding.
    assert [(u["network"], u["viewer_network"], u["bound_to"]) for u in report["issuances"]] == [
        ("127.0.0.0/24", mask_ip(VIEWER_IP), None), ("127.0.0.0/24", mask_ip(VIEWER_IP), mask_network(BOUND)),
        ("127.0.0.0/24", mask_ip(VIEWER_IP), None),
    ]  # fmt: skip
    assert report["affected_subjects"] == ["alice", "carol"]  # the owners of what was signed, as for singles


async def test_gatewayctl_incident_report_lists_every_url_of_a_batch(
    gw: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    results = await _batch(gw)
    argv = ["incident", "report", "--kid", gw.kid, "--json", "-", "--data-dir", str(gw.services.config.data_dir)]
    assert await asyncio.to_thread(gatewayctl, argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert [u["url_sha256"] for u in report["issuances"]] == [_digest(r["url"]) for r in results]


async def test_outsider_use_detection_learns_every_url_of_a_batch(gw: Gateway) -> None:
    watcher = gw.services.watcher
    watcher.watching = True  # as ``run`` sets it: the batcher's hook feeds it each committed group
    results = await _batch(gw)
    await watcher.step(gw.world.clock())
    # A token is its key and expiry: the three share one, issued to the caller, the viewer and one binding.
    assert {r["expires_at"] for r in results} == {results[0]["expires_at"]}
    expected = {"127.0.0.0/24", mask_ip(VIEWER_IP), mask_network(BOUND)}
    for result in results:
        assert watcher.index.networks(gw.kid, result["expires_at"]) == expected
        if watcher.shared:  # PostgreSQL: what other replicas check an outsider against
            assert await gw.services.store.watch.issued_networks(gw.kid, result["expires_at"]) == expected


async def test_subject_export_erasure_and_verify(gw: Gateway) -> None:
    await _batch(gw)
    subjects = gw.services.subjects
    [exported] = [r for r in (await subjects.export(ADMIN, "alice", gw.world.clock()))["audit_records"]
                  if r["event"] == "url:issued_batch"]  # fmt: skip
    assert len(exported["detail"]["urls"]) == 3
    assert exported["personal"] == {
        "subject": "alice", "client_ip": "127.0.0.0/24", "user_agent": exported["personal"]["user_agent"],
        "viewer_network": mask_ip(VIEWER_IP), "bound_to": [None, mask_network(BOUND), None],
    }  # fmt: skip
    await subjects.erase(ADMIN, "alice", "request 9", gw.world.clock())
    [after] = [r for r in (await subjects.export(ADMIN, "alice", gw.world.clock()))["audit_records"]
               if r["event"] == "url:issued_batch"]  # fmt: skip
    assert after["personal"] is None and after["detail"]["urls"] == exported["detail"]["urls"]
    assert (await verify(gw.services)).ok


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("UPDATE audit_urls SET media_id = 'm9' WHERE position = 1", "1 missing or altered, 1 added or altered"),
        ("UPDATE audit_urls SET url_sha256 = 'ab' WHERE position = 0", "1 missing or altered, 1 added or altered"),
        ("DELETE FROM audit_urls WHERE position = 2", "1 missing or altered, 0 added or altered"),
        ("INSERT INTO audit_urls VALUES ({seq}, 3, {forged})", "0 missing or altered, 1 added"),
        ("INSERT INTO audit_urls VALUES ({before}, 0, {forged})", "0 missing or altered, 1 added"),
    ],
    ids=["altered", "digest-altered", "removed", "added", "added-to-a-record-of-another-kind"],
)
async def test_a_child_row_altered_removed_or_added_fails_verify_naming_the_record(
    gw: Gateway, tamper: str, why: str
) -> None:
    await _batch(gw)
    [record] = await _issuance_records(gw)
    assert record.seq is not None
    await gw.sql(tamper.format(seq=record.seq, before=record.seq - 1, forged=FORGED))
    report = await verify(gw.services)
    bad = record.seq - 1 if "{before}" in tamper else record.seq
    assert (report.ok, report.first_bad) == (False, bad)
    assert report.problem is not None and report.problem.startswith(f"record #{bad}: its rows in the URL index")
    assert why in report.problem


@pytest.mark.parametrize("where", ["past-the-end", "before-the-start"])
async def test_a_child_row_outside_the_log_fails_verify(gw: Gateway, where: str) -> None:
    await _batch(gw)
    seq = (await gw.services.store.audit.frontier()).size + 5 if where == "past-the-end" else 0
    await gw.sql(f"INSERT INTO audit_urls VALUES ({seq}, 0, {FORGED})")  # noqa: S608 (a test's own values)
    report = await verify(gw.services)
    assert (report.ok, report.first_bad) == (False, seq)
    assert report.problem == f"record #{seq} does not exist, but the URL index lists its URLs"


async def test_a_denied_item_keeps_its_own_record_beside_the_batch(gw: Gateway) -> None:
    items = [*ITEMS[:2], {"media_id": "missing", "rendition": "video"}, ITEMS[2]]
    results = await _batch(gw, items)
    assert [r["status"] for r in results] == [200, 200, 404, 200]
    records = await _issuance_records(gw)
    assert [r.event for r in records] == [AuditEvent.URL_ISSUED_BATCH, AuditEvent.URL_DENIED]
    assert [u["media_id"] for u in records[0].detail["urls"]] == ["m1", "m2", "pub"]
    assert (records[1].media_id, records[1].reason) == ("missing", "not_found")
    assert (await verify(gw.services)).ok


async def test_a_call_that_issues_one_url_keeps_the_single_record(gw: Gateway) -> None:
    """/v1/sign, and a batch of which one item was issued: the ``url:issued`` record as before, no child rows."""
    results = await _batch(gw, [ITEMS[0], {"media_id": "missing", "rendition": "video"}])
    body = {**ITEMS[1], "viewer": {"id": "alice"}}
    single = await gw.client.post("/v1/sign", json=body, headers=gw.world.auth("web"))
    assert single.status == 200
    records = await _issuance_records(gw)
    assert [r.event for r in records] == [AuditEvent.URL_ISSUED, AuditEvent.URL_DENIED, AuditEvent.URL_ISSUED]
    assert records[0].url_sha256 == _digest(results[0]["url"]) and "urls" not in records[0].detail
    assert await gw.services.store.audit.urls(0, None) == []
    found = await gw.services.store.audit.search(AuditQuery(media_id="m2", event="url:issued"))
    assert [r.seq for r in found] == [records[2].seq]


async def test_a_pruned_batch_record_takes_its_child_rows_and_verify_stays_green(gw: Gateway) -> None:
    await _batch(gw)
    await gw.services.checkpointer.write(gw.world.clock())
    await _batch(gw)  # not yet covered by a checkpoint: kept
    gw.world.clock.advance(91 * DAY)
    counts = await prune(gw.services.store, RequestContext(actor="ops"), gw.world.clock(), 7)
    assert counts["records_pruned"] == 1
    [kept] = await gw.services.store.audit.search(AuditQuery(kid=gw.kid, event="url:issued_batch"))
    assert {row[0] for row in await gw.services.store.audit.urls(0, None)} == {kept.seq}
    assert (await verify(gw.services)).ok


async def test_no_url_leaves_when_the_child_rows_cannot_be_written(gw: Gateway) -> None:
    """The child rows commit with their record or not at all: a failed write is a 503 and nothing logged."""
    before = (await gw.services.store.audit.frontier()).size
    await gw.sql("DROP TABLE audit_urls")
    body = {"items": ITEMS, "viewer": {"id": "alice"}}
    response = await gw.client.post("/v1/sign/batch", json=body, headers=gw.world.auth("web"))
    assert response.status == 503
    assert (await response.json())["error"] == "audit_unavailable"
    assert "gw_sig" not in await response.text()
    assert (await gw.services.store.audit.frontier()).size == before


@pytest.mark.parametrize("index", ["audit_urls_by_kid", "audit_by_kid"])
async def test_an_index_redefined_to_skip_a_record_fails_verify(gw: Gateway, index: str) -> None:
    """Red team round 5: searches read through indexes verify never looked at. An index that leaves a record out
    (here declared partial, which SQLite's writable schema can then disguise) is refused by name."""
    await _batch(gw)
    [record] = await _issuance_records(gw)
    table = "audit_urls" if index.startswith("audit_urls") else "audit"
    await gw.sql(f"DROP INDEX {index}")
    await gw.sql(f"CREATE INDEX {index} ON {table}(kid, seq) WHERE seq <> {record.seq}")
    report = await verify(gw.services)
    assert (report.ok, report.first_bad) == (False, None)
    assert report.problem is not None and f"index {index} was redefined" in report.problem
    await gw.sql(f"DROP INDEX {index}")
    await gw.sql(f"CREATE INDEX {index} ON {table}(kid, seq)")
    assert (await verify(gw.services)).ok


async def test_an_index_that_is_not_the_gateways_fails_verify(gw: Gateway) -> None:
    await _batch(gw)
    await gw.sql("CREATE INDEX audit_by_reason ON audit(reason)")
    report = await verify(gw.services)
    assert report.problem is not None and "index audit_by_reason is not one the gateway creates" in report.problem


async def test_a_search_for_url_issued_finds_the_batch_records_too(gw: Gateway) -> None:
    """Red team round 5: ``audit search --event url:issued --kid K`` ("what did this key issue") left out every
    URL issued in a batch, with no hint that it had."""
    await _batch(gw)
    single = await gw.client.post(
        "/v1/sign", json={**ITEMS[0], "viewer": {"id": "alice"}}, headers=gw.world.auth("web")
    )
    assert single.status == 200
    for query in (AuditQuery(event="url:issued", kid=gw.kid), AuditQuery(event="url:issued", media_id="m2"),
                  AuditQuery(event="url:issued")):  # fmt: skip
        found = await gw.services.store.audit.search(query)
        expected = [AuditEvent.URL_ISSUED_BATCH] + ([] if query.media_id else [AuditEvent.URL_ISSUED])
        assert [r.event for r in found] == expected, query
    only = await gw.services.store.audit.search(AuditQuery(event="url:issued_batch", kid=gw.kid))
    assert [r.event for r in only] == [AuditEvent.URL_ISSUED_BATCH]
