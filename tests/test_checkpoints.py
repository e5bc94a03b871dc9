"""Checkpoint cadence (records, time, idle), signatures, and export to S3 with Object Lock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest

from gateway.audit.checkpoints import LogSigner, body, signature_ok
from gateway.audit.export import DirectoryExporter, S3Exporter, segment_lines
from gateway.audit.publisher import Checkpointer, CheckpointPolicy, segment_text
from gateway.audit.records import AuditEvent, RequestContext, change, issued
from gateway.store.base import LogEntry, Store
from tests.audit_support import fill, verify
from tests.support import ADMIN, World


async def test_due_every_n_records_and_every_t_seconds_even_when_idle(world: World) -> None:
    signer = LogSigner.load(world.services.config.log_signing_key_path)
    checkpointer = Checkpointer(world.services.store, signer, [], CheckpointPolicy(every_records=5, every_seconds=60))
    assert await checkpointer.maybe(world.clock()) is not None  # the first one
    await fill(world, 1)
    assert await checkpointer.maybe(world.clock()) is None
    await fill(world, 3)  # 1 + 2 set-up + 3 = enough?
    size = (await world.services.store.audit.frontier()).size
    last = await checkpointer.latest()
    assert last is not None
    expect_due = size - last.tree_size >= 5
    assert (await checkpointer.maybe(world.clock()) is not None) == expect_due
    idle_at = world.clock() + 61
    idle = await checkpointer.maybe(idle_at)
    assert idle is not None and idle.tree_size == size  # idle: same size, fresh time


def test_checkpoint_body_and_signature(tmp_path: Path) -> None:
    LogSigner.create(tmp_path / "log.key")
    signer = LogSigner.load(tmp_path / "log.key")
    checkpoint = signer.sign(42, b"\x01" * 32, 1_800_000_000.7)
    assert body(42, b"\x01" * 32, checkpoint.time).decode().splitlines() == [
        "media-gateway/audit-log", "42", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "1800000000",
    ]  # fmt: skip
    keys = {signer.key_id: signer.public}
    assert signature_ok(checkpoint, keys)
    assert not signature_ok(
        checkpoint.__class__(43, checkpoint.time, checkpoint.root, signer.key_id, checkpoint.signature), keys
    )
    assert not signature_ok(checkpoint, {})


async def test_checkpoints_and_segments_go_to_s3_under_compliance_object_lock(world: World, moto_endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    client.create_bucket(Bucket="audit-worm", ObjectLockEnabledForBucket=True)
    signer = LogSigner.load(world.services.config.log_signing_key_path)
    exporter = S3Exporter("audit-worm", "gw/", client)
    checkpointer = Checkpointer(world.services.store, signer, [exporter], CheckpointPolicy())
    await fill(world, 4)
    checkpoint = await checkpointer.write(world.clock())
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="audit-worm")["Contents"])
    assert any(k.startswith("gw/checkpoints/") for k in keys)
    assert any(k.startswith("gw/segments/viewer/") for k in keys) and any(
        k.startswith("gw/segments/engineer/") for k in keys
    )
    for key in keys:
        head = client.head_object(Bucket="audit-worm", Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        days = (head["ObjectLockRetainUntilDate"].timestamp() - time.time()) / 86400
        assert (days > 6 * 365 - 2) if "/viewer/" not in key else (89 < days < 91), (key, days)
    with pytest.raises(client.exceptions.ClientError):
        client.delete_object(Bucket="audit-worm", Key=keys[0],
                             VersionId=client.head_object(Bucket="audit-worm", Key=keys[0])["VersionId"])  # fmt: skip
    assert checkpoint.tree_size == (await world.services.store.audit.frontier()).size
    assert (await verify(world.services)).ok


async def test_the_writer_hands_over_each_record_exactly_as_the_log_reads_it_back(store: Store) -> None:
    """Issue 18: what a checkpoint exports from memory is what it would have read from the database."""
    handed: list[LogEntry] = []
    store.on_appended = handed.extend
    ctx = RequestContext(actor="web", request_id="r1", client_ip="203.0.113.9")
    records = [
        issued(ctx, now=1_800_000_000.5 + i, kid="gwk_A", media_id=f"m{i}", rendition="video", subject=f"sub_{i}",
               url=f"https://cdn/v/{i}", expires_at=1_800_000_300, reason="owner", detail={"n": i, "é": "ü"})
        for i in range(3)
    ]  # fmt: skip
    seqs = await store.append_audit_group(records, [], [], 1_800_000_000.0)
    assert [e.seq for e in handed] == seqs
    assert handed == await store.audit.entries(seqs[0] - 1, 10)
    assert segment_lines(handed) == segment_lines(await store.audit.entries(seqs[0] - 1, 10))


async def test_a_serving_checkpoint_reads_back_only_what_another_process_wrote(world: World, tmp_path: Path) -> None:
    services = world.services
    signer = LogSigner.load(services.config.log_signing_key_path)
    export = tmp_path / "export"
    checkpointer = Checkpointer(services.store, signer, [DirectoryExporter(export)], CheckpointPolicy())
    await fill(world, 1)  # the principal, its key and the media item: administrative records
    await checkpointer.write(world.clock())  # seals what set-up wrote (read back: nothing was remembered)
    checkpointer.remember_appends()
    before = checkpointer.read_back
    await fill(world, 3)
    async with services.store.transaction() as tx:  # as the CLI would: not through this process's group writer
        await tx.audit.append([change(ADMIN, AuditEvent.KEY_CREATED, now=world.clock(), kid="gwk_X")])
    await fill(world, 2)
    sealed = await checkpointer.write(world.clock())
    assert checkpointer.read_back - before == 1  # the CLI's record, and nothing this process wrote
    lines = [
        json.loads(line) for f in sorted((export / "segments").glob("*/*.jsonl")) for line in f.read_text().splitlines()
    ]
    newest = sorted(item["seq"] for item in lines if item["seq"] > sealed.tree_size - 6)
    assert newest == list(range(sealed.tree_size - 5, sealed.tree_size + 1))
    assert (await verify(services)).ok


@pytest.mark.parametrize("count", [0, 1, 100, 101, 250])
async def test_a_segment_built_in_slices_is_the_same_text(store: Store, count: int) -> None:
    """Issue 18: the export yields to waiting requests between slices of 100 lines; the bytes do not change."""
    ctx = RequestContext(actor="web", request_id="r1", client_ip="203.0.113.9")
    records = [
        issued(ctx, now=1_800_000_000.5 + i, kid="gwk_A", media_id=f"m{i}", rendition="video", subject=f"sub_{i}",
               url=f"https://cdn/v/{i}", expires_at=1_800_000_300, reason="owner", detail={"n": i})
        for i in range(count)
    ]  # fmt: skip
    if records:
        await store.append_audit_group(records, [], [], 1_800_000_000.0)
    entries = await store.audit.entries(0, 1000)
    assert len(entries) == count
    assert await segment_text(entries) == segment_lines(entries)
    assert (await segment_text(entries)).count("\n") == max(count, 1)
