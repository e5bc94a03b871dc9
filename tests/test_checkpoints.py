"""Checkpoint cadence (records, time, idle), signatures, and export to S3 with Object Lock."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest

from gateway.audit.checkpoints import LogSigner, body, signature_ok
from gateway.audit.export import S3Exporter
from gateway.audit.publisher import Checkpointer, CheckpointPolicy
from tests.audit_support import fill, verify
from tests.support import World


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
