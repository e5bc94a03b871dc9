"""``privacy.protect`` (one walk over ``detail``) against the reference it replaced, and the group nonces.

The reference is the three-comprehension version sealing had before (issue 18): given the same nonce both must
give the very same record (the sealed bytes included) for any record, any detail and any networks in it.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import privacy
from gateway.audit.records import NETWORK_DETAIL, AuditEvent, AuditRecord

_KEY = AESGCM(bytes(range(32)))


def _reference(record: AuditRecord, ref: str, key: AESGCM, nonce: bytes) -> AuditRecord:
    fields = {name: getattr(record, name) for name in privacy.PERSONAL_FIELDS}
    fields |= {name: record.detail[name] for name in NETWORK_DETAIL if name in record.detail}
    detail = {name: value for name, value in record.detail.items() if name not in NETWORK_DETAIL}
    sealed = nonce + key.encrypt(nonce, privacy._encode_fields(fields), ref.encode())
    return record.evolve(subject=ref, client_ip=None, user_agent=None, personal=sealed, detail=detail)


_text = st.text(max_size=12)
_names = st.sampled_from([*NETWORK_DETAIL, "issuance_id", "profile", "urls", "grant_id", "x"]) | _text
_values: st.SearchStrategy[Any] = st.none() | st.integers() | _text | st.lists(st.none() | _text, max_size=3)


@settings(max_examples=400)
@given(
    detail=st.dictionaries(_names, _values, max_size=6),
    subject=_text,
    client_ip=st.none() | _text,
    user_agent=st.none() | _text,
    event=st.sampled_from([AuditEvent.URL_ISSUED, AuditEvent.URL_ISSUED_BATCH, AuditEvent.URL_DENIED]),
)
def test_protect_matches_the_reference(
    detail: dict[str, Any], subject: str, client_ip: str | None, user_agent: str | None, event: AuditEvent
) -> None:
    record = AuditRecord(
        time=5.0, event=event, actor="a", subject=subject, client_ip=client_ip, user_agent=user_agent, detail=detail
    )
    nonce = secrets.token_bytes(12)
    ours = privacy.protect(record, "sub_x", _KEY, nonce)
    assert ours == _reference(record, "sub_x", _KEY, nonce)
    assert list(ours.detail) == [name for name in detail if name not in NETWORK_DETAIL]  # the order kept
    assert ours.detail is not record.detail  # never the caller's mapping, shared


def test_group_nonces_are_twelve_fresh_bytes_each() -> None:
    drawn = privacy.nonces(1000)
    assert len(drawn) == 1000
    assert all(len(nonce) == 12 for nonce in drawn)
    assert len(set(drawn)) == 1000
    assert privacy.nonces(0) == []


def test_each_record_of_a_group_is_sealed_under_its_own_nonce() -> None:
    import asyncio

    from gateway.audit.log import AuditLog

    log = AuditLog(None, None, b"p" * 32)  # type: ignore[arg-type]  # every subject's key is held: no store read
    records = [AuditRecord(time=1.0, event=AuditEvent.URL_DENIED, actor="a", subject=f"s{i % 3}") for i in range(50)]
    for subject in {"s0", "s1", "s2"}:
        log._keys[log.ref(subject)] = _KEY
    sealed = asyncio.run(log.prepare_standalone(records, 1.0))
    nonces = {record.personal[:12] for record in sealed if record.personal}
    assert len(nonces) == 50
    for record, original in zip(sealed, records, strict=True):
        assert record.personal is not None and record.subject is not None
        assert privacy.unseal(record.personal, record.subject, bytes(range(32))) == {
            "subject": original.subject, "client_ip": None, "user_agent": None,
        }  # fmt: skip
