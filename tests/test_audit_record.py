"""Audit record serialisation: what the Merkle log hashes must survive the store."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.records import AuditEvent, AuditRecord

records = st.builds(
    AuditRecord,
    time=st.one_of(st.floats(0, 2e9), st.integers(0, 2_000_000_000)),
    event=st.sampled_from(list(AuditEvent)),
    actor=st.text(max_size=8),
    kid=st.one_of(st.none(), st.text(max_size=8)),
    reason=st.one_of(st.none(), st.text(max_size=8)),
    detail=st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    personal=st.one_of(st.none(), st.binary(max_size=16)),
)


@given(records, st.integers(1, 10**12))
def test_leaf_parts_splice_to_exactly_the_leaf_bytes(record: AuditRecord, seq: int) -> None:
    before, after = record.leaf_parts()
    assert before + str(seq).encode() + after == record.leaf_bytes(seq)


def test_an_integer_time_hashes_like_the_same_float() -> None:
    # The store keeps REAL; a record written with an int time must verify after reading back.
    as_int = AuditRecord(1_800_000_000, AuditEvent.URL_ISSUED, "web")  # type: ignore[arg-type]
    as_float = AuditRecord(1_800_000_000.0, AuditEvent.URL_ISSUED, "web")
    assert as_int.leaf_bytes(7) == as_float.leaf_bytes(7)
