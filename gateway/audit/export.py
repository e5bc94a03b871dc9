"""Shipping checkpoints and sealed log segments out of the database's trust domain.

``DirectoryExporter`` writes files (point it at storage on another host);
``S3Exporter`` writes objects under S3 Object Lock in COMPLIANCE mode with the
retention of each record class, so nobody, root included, can shorten or
delete them before it ends. boto3 is blocking: it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import msgspec

from gateway.audit.records import ENGINEER, RETENTION_SECONDS
from gateway.config import Config
from gateway.store.base import Checkpoint, LogEntry
from gateway.store.files import replace_private


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "tree_size": checkpoint.tree_size,
        "time": checkpoint.time,
        "root": base64.b64encode(checkpoint.root).decode(),
        "key_id": checkpoint.key_id,
        "signature": base64.b64encode(checkpoint.signature).decode(),
    }


def checkpoint_from_json(data: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        tree_size=int(data["tree_size"]),
        time=float(data["time"]),
        root=base64.b64decode(data["root"]),
        key_id=str(data["key_id"]),
        signature=base64.b64decode(data["signature"]),
    )


def segment_lines(entries: Sequence[LogEntry]) -> str:
    """One JSON line per record: its leaf hash and the leaf's input (``leaf.leaf_input``), then the record.

    The header and body hash let whoever holds the segment recompute each leaf without the gateway's code.
    """
    lines = []
    for entry in entries:
        body = entry.body_sha256
        line = {"seq": entry.seq, "leaf_hash": entry.leaf_hash.hex(), "time": entry.time, "event": entry.event,
                "retention": entry.retention, "body_sha256": None if body is None else body.hex(),
                "record": None if entry.record is None else entry.record.to_dict()}  # fmt: skip
        lines.append(_line(line))
    return b"\n".join(lines).decode() + "\n"


def _line(line: dict[str, Any]) -> bytes:
    """One segment line: msgspec (a few µs; segments are read as JSON, never hashed), json for what it refuses."""
    try:
        return _encode_line(line)
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
        return json.dumps(line, sort_keys=True).encode()


_encode_line = msgspec.json.Encoder(order="sorted").encode


def checkpoint_name(checkpoint: Checkpoint) -> str:
    return f"checkpoints/{checkpoint.tree_size:012d}-{int(checkpoint.time)}.json"


def segment_name(first: int, last: int, retention: str) -> str:
    return f"segments/{retention}/{first:012d}-{last:012d}.jsonl"


class Exporter(Protocol):
    async def export(self, name: str, text: str, retain_seconds: int) -> None: ...


class DirectoryExporter:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def export(self, name: str, text: str, retain_seconds: int) -> None:
        await asyncio.to_thread(self._write, name, text)

    def _write(self, name: str, text: str) -> None:
        # Segments hold personal data (masked IPs, pseudonyms): owner-only directories and files.
        replace_private(self.root / name, text.encode())


@dataclass
class S3Exporter:
    bucket: str
    prefix: str
    client: Any  # a boto3 S3 client

    async def export(self, name: str, text: str, retain_seconds: int) -> None:
        await asyncio.to_thread(self._put, name, text, retain_seconds)

    def _put(self, name: str, text: str, retain_seconds: int) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=f"{self.prefix}{name}",
            Body=text.encode(),
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(seconds=retain_seconds),
        )


async def export_all(exporters: Sequence[Exporter], name: str, text: str, retention: str) -> None:
    for exporter in exporters:
        await exporter.export(name, text, RETENTION_SECONDS.get(retention, RETENTION_SECONDS[ENGINEER]))


def configured_exporters(config: Config) -> list[Exporter]:
    """The exporters the config names (the one place boto3 is set up)."""
    exporters: list[Exporter] = []
    if config.export_dir is not None:
        exporters.append(DirectoryExporter(config.export_dir))
    if config.audit_s3_bucket:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=config.audit_s3_endpoint_url or None,
            region_name=config.audit_s3_region,
        )
        exporters.append(S3Exporter(config.audit_s3_bucket, config.audit_s3_prefix, client))
    return exporters
