"""Audit record serialisation: what the Merkle log hashes must survive the store, and pruning."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.merkle import leaf_hash
from gateway.audit.records import AuditEvent, AuditRecord, leaf_at, leaf_input

records = st.builds(
    AuditRecord,
    time=st.one_of(st.floats(0, 2e9), st.integers(0, 2_000_000_000)),
    event=st.sampled_from(list(AuditEvent)),
    actor=st.text(max_size=8),
    kid=st.one_of(st.none(), st.text(max_size=8)),
    reason=st.one_of(st.none(), st.text(max_size=8)),
    detail=st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    personal=st.one_of(st.none(), st.binary(max_size=16)),
    retention=st.sampled_from(["engineer", "viewer"]),
)


@given(records, st.integers(1, 10**12))
def test_leaf_parts_give_exactly_the_leaf_bytes(record: AuditRecord, seq: int) -> None:
    body, after_seq = record.leaf_parts()
    assert body == record.body_sha256()
    assert leaf_at(seq, after_seq) == record.leaf_bytes(seq)


@given(records, st.integers(1, 10**12))
def test_a_pruned_record_leaf_is_recomputed_from_what_pruning_keeps(record: AuditRecord, seq: int) -> None:
    kept = leaf_input(seq, float(record.time), record.retention, record.event.value, record.body_sha256())
    assert kept == record.leaf_bytes(seq)


def test_an_integer_time_hashes_like_the_same_float() -> None:
    # The store keeps REAL; a record written with an int time must verify after reading back.
    as_int = AuditRecord(1_800_000_000, AuditEvent.URL_ISSUED, "web")  # type: ignore[arg-type]
    as_float = AuditRecord(1_800_000_000.0, AuditEvent.URL_ISSUED, "web")
    assert as_int.leaf_bytes(7) == as_float.leaf_bytes(7)


def test_leaf_layout_known_answer() -> None:
    """docs/audit.md's layout, written out by hand: version, seq, time, class, event, body hash."""
    record = AuditRecord(1_800_000_000.5, AuditEvent.KEY_REVOKED, "cli:ops", kid="gwk_abc", reason="laptop stolen",
                         detail={"by": "ops"})  # fmt: skip
    body = (
        '{"actor":"cli:ops","client_ip":null,"decision":null,"detail":{"by":"ops"},"event":"key:revoked",'
        '"expires_at":null,"kid":"gwk_abc","media_id":null,"personal":null,"reason":"laptop stolen",'
        '"rendition":null,"request_id":null,"retention":"engineer","subject":null,"time":1800000000.5,'
        '"url_sha256":null,"user_agent":null}'
    )
    body_sha256 = hashlib.sha256(body.encode()).digest()
    assert body_sha256.hex() == "68dd4cead211af1a95e0080b56372cfed63a0f68573ed6220073e4248ce5ad73"
    expected = (
        bytes.fromhex("02")
        + bytes.fromhex("0000000000000007")  # seq 7
        + bytes.fromhex("41dad27480200000")  # 1800000000.5 as a big-endian binary64
        + bytes.fromhex("0008") + b"engineer"
        + bytes.fromhex("000b") + b"key:revoked"
        + body_sha256
    )  # fmt: skip
    assert record.body_sha256() == body_sha256
    assert record.leaf_bytes(7) == expected
    assert leaf_hash(expected).hex() == "d660d8573aea54a537e4eb36c3504704a7c1dc7b4ad813e66f04c22666f2e800"


@given(records, st.sampled_from(["sub_abc", None]), st.binary(max_size=8))
def test_evolve_is_dataclasses_replace(record: AuditRecord, subject: str | None, personal: bytes) -> None:
    changes = {"subject": subject, "client_ip": None, "personal": personal, "detail": {"x": 1}}
    before = record.to_dict()
    evolved = record.evolve(**changes)
    assert evolved == dataclasses.replace(record, **changes)
    assert evolved.leaf_bytes(3) == dataclasses.replace(record, **changes).leaf_bytes(3)
    assert record.to_dict() == before  # the original is untouched


def test_evolve_refuses_a_field_no_record_has() -> None:
    with pytest.raises(TypeError, match="no field 'subjekt'"):
        AuditRecord(1.0, AuditEvent.URL_ISSUED, "web").evolve(subjekt="x")
