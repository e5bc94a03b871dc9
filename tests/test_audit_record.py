"""Audit record serialisation: what the Merkle log hashes must survive the store, and pruning."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.batch import IssuedUrl, call_records
from gateway.audit.leaf import canonical_json, fast_bytes, leaf_at, leaf_input
from gateway.audit.merkle import leaf_hash
from gateway.audit.records import (
    AuditEvent,
    AuditRecord,
    RequestContext,
    denied,
    issued,
    redeemed,
)
from gateway.netaddr import mask_ip
from gateway.store import rows

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


def _redeemed_as_built_before(ctx: RequestContext, now: float, kid: str, url: str, expires: int) -> AuditRecord:
    """A redemption record as ``records.redeemed`` built it through ``AuditRecord.__init__`` (and the caller's
    ``replace(ctx, user_agent=None)``), before it set its fields in one update."""
    return AuditRecord(
        time=now, event=AuditEvent.URL_REDEEMED, kid=kid, url_sha256=hashlib.sha256(url.encode()).hexdigest(),
        expires_at=expires, decision="allow", retention="viewer", detail={"profile": "native"}, actor=ctx.actor,
        request_id=ctx.request_id, client_ip=mask_ip(ctx.client_ip), user_agent=None,
    )  # fmt: skip


_ADDRESSES = st.sampled_from([None, "", "203.0.113.7", "2001:db8::1", "::ffff:198.51.100.9", "not an address"])


@settings(max_examples=300)
@given(actor=st.text(max_size=8), request_id=st.one_of(st.none(), st.text(max_size=8)), client_ip=_ADDRESSES,
       user_agent=st.one_of(st.none(), st.text(max_size=300)), now=st.one_of(st.floats(0, 2e9), st.integers(0, 2**31)),
       kid=st.text(max_size=8), url=st.text(max_size=40), expires=st.integers(0, 2**53))  # fmt: skip
def test_a_redemption_record_is_the_record_init_builds(
    actor: str, request_id: str | None, client_ip: str | None, user_agent: str | None, now: float, kid: str,
    url: str, expires: int,
) -> None:  # fmt: skip
    ctx = RequestContext(actor, request_id, client_ip, user_agent, viewer_ip="198.51.100.1")
    built = redeemed(ctx, now=now, kid=kid, url=url, expires_at=expires, profile="native")
    before = _redeemed_as_built_before(ctx, now, kid, url, expires)
    assert built == before
    assert list(vars(built).items()) == list(vars(before).items())  # every field, in field order
    assert built.leaf_bytes(9) == before.leaf_bytes(9)
    assert built.detail is not redeemed(ctx, now=now, kid=kid, url=url, expires_at=1, profile="native").detail


def test_evolve_refuses_a_field_no_record_has() -> None:
    with pytest.raises(TypeError, match="no field 'subjekt'"):
        AuditRecord(1.0, AuditEvent.URL_ISSUED, "web").evolve(subjekt="x")


# Leaf bodies: msgspec where it writes json's bytes, json where it does not (issue 18). Values of every
# JSON-ish kind, including what the two encoders spell differently: exponents, NaN, non-ASCII, DEL, control
# characters, lone surrogates, int keys, bytes.
# Mostly printable ASCII (the fast path's domain), sometimes each character the encoders spell differently.
_PRINTABLE = [chr(c) for c in range(0x20, 0x7F)]
_any_text = st.one_of(
    st.text(st.sampled_from([*_PRINTABLE, "\x7f", "é", "\x01", "\\", "\ud800", "\u2028"]), max_size=12),
    st.text(st.characters(blacklist_categories=()), max_size=3),
)
_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e16, 1e-7, 1e22, 0.0001]))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), _floats, _any_text,
                     st.sampled_from(["\x7f", "a\\b", 'q"', "\n", "é", "/"]))  # fmt: skip
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_any_text, inner, max_size=3)),
    max_leaves=8,
)
any_records = st.builds(
    AuditRecord,
    time=st.one_of(_floats, st.integers(0, 2_000_000_000)),
    event=st.sampled_from(list(AuditEvent)),
    actor=_any_text,
    request_id=st.one_of(st.none(), _any_text),
    kid=st.one_of(st.none(), _any_text),
    subject=st.one_of(st.none(), _any_text),
    url_sha256=st.one_of(st.none(), st.text("0123456789abcdef", min_size=64, max_size=64)),
    expires_at=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
    user_agent=st.one_of(st.none(), _any_text),
    detail=st.dictionaries(_any_text, _json, max_size=4),
    personal=st.one_of(st.none(), st.binary(max_size=40)),
    retention=st.sampled_from(["engineer", "viewer"]),
)


def _json_module(data: object) -> bytes | type[Exception]:
    try:
        return json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode(data).encode("utf-8")
    except (TypeError, ValueError) as exc:
        return type(exc)


def _ours(data: dict[str, object]) -> bytes | type[Exception]:
    try:
        return canonical_json(data)
    except (TypeError, ValueError) as exc:
        return type(exc)


@settings(max_examples=1000)
@given(any_records)
def test_leaf_body_bytes_are_json_modules_bytes_for_any_record(record: AuditRecord) -> None:
    data = record.to_dict()
    data.pop("seq")
    assert _ours(data) == _json_module(data)


@settings(max_examples=300)
@given(st.dictionaries(st.one_of(_any_text, st.integers(), st.booleans()), _json, max_size=4),
       st.one_of(st.none(), st.binary(max_size=4), st.integers()))  # fmt: skip
def test_canonical_json_agrees_or_refuses_alike_for_any_mapping(data: dict[object, object], extra: object) -> None:
    """Keys json sorts before spelling (ints, bools), mixed keys json cannot sort, bytes json refuses."""
    assert _ours({**data, "x": extra}) == _json_module({**data, "x": extra})  # type: ignore[dict-item]


def test_an_ordinary_issuance_takes_msgspecs_path() -> None:
    ctx = RequestContext(actor="web", request_id="req_1", client_ip="203.0.113.7", user_agent="curl/8")
    record = issued(ctx, now=1_800_000_000.25, kid="gwk_A", media_id="m1", rendition="video", subject="alice",
                    url="https://cdn.example/v/m1/a.m3u8?gw_sig=x", expires_at=1_800_000_300, reason="owner",
                    detail={"issuance_id": "gwi_1", "profile": "native"})  # fmt: skip
    data = record.to_dict()
    data.pop("seq")
    assert fast_bytes(data) == _json_module(data)


@settings(max_examples=1000)
@given(any_records)
def test_the_stored_detail_text_is_json_modules_for_any_record(record: AuditRecord) -> None:
    """``stored_parts``: the leaf parts exactly, and the detail column's text written by msgspec only where it is
    ``json``'s compact text (read back as the same JSON as the spaced text written before)."""
    try:
        body, after, detail = record.stored_parts()
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            record.leaf_parts()
        return
    assert (body, after) == record.leaf_parts()
    if detail is not None:
        assert detail.encode() == _json_module(dict(record.detail))
        assert json.loads(detail) == json.loads(json.dumps(dict(record.detail), sort_keys=True))


def test_a_batch_records_detail_takes_msgspecs_path() -> None:
    ctx = RequestContext(actor="web", request_id="req_1", client_ip="203.0.113.7", viewer_ip="198.51.100.9")
    urls = [IssuedUrl("gwk_A", f"m{i}", "video", f"https://cdn/v/m{i}.m3u8", 1_800_000_300, "owner",
                      {"issuance_id": f"gwi_{i}", "profile": "native", "dialect": "native"}, "192.0.2.1")
            for i in range(3)]  # fmt: skip
    [record] = call_records(ctx, 1_800_000_000.25, "alice", "viewer", urls)
    assert record.stored_parts()[2] == json.dumps(dict(record.detail), sort_keys=True, separators=(",", ":"))


# The per-request builders skip the frozen dataclass's __init__ (issue 18): the shortcut must build exactly the
# record the full path builds — the same fields, values and field order (to_dict copies the instance dict).
_FIELD_ORDER = [f.name for f in dataclasses.fields(AuditRecord)]
_optional_values = st.fixed_dictionaries(
    {},
    optional={
        "request_id": st.one_of(st.none(), _any_text),
        "kid": st.one_of(st.none(), _any_text),
        "media_id": st.one_of(st.none(), _any_text),
        "rendition": st.one_of(st.none(), _any_text),
        "subject": st.one_of(st.none(), _any_text),
        "url_sha256": st.one_of(st.none(), st.text("0123456789abcdef", min_size=64, max_size=64)),
        "expires_at": st.one_of(st.none(), st.integers(-(2**70), 2**70)),
        "decision": st.one_of(st.none(), _any_text),
        "reason": st.one_of(st.none(), _any_text),
        "client_ip": st.one_of(st.none(), _any_text),
        "user_agent": st.one_of(st.none(), _any_text),
        "retention": st.sampled_from(["engineer", "viewer"]),
        "personal": st.one_of(st.none(), st.binary(max_size=40)),
        "seq": st.one_of(st.none(), st.integers(1, 10**12)),
    },
)


def _reference_to_dict(record: AuditRecord) -> dict[str, object]:
    """``to_dict`` as it was written before the instance-dict copy: every field read by name, in field order."""
    data = {name: getattr(record, name) for name in _FIELD_ORDER}
    data["event"] = record.event.value
    data["time"] = float(record.time)
    data["detail"] = dict(record.detail)
    data["personal"] = None if record.personal is None else base64.b64encode(record.personal).decode()
    return data


@settings(max_examples=500)
@given(st.one_of(st.floats(0, 2e9), st.integers(0, 2_000_000_000)), st.sampled_from(list(AuditEvent)), _any_text,
       st.dictionaries(_any_text, _json, max_size=3), _optional_values)  # fmt: skip
def test_a_record_as_built_holds_its_fields_in_field_order(
    time: float, event: AuditEvent, actor: str, detail: dict[str, object], values: dict[str, object]
) -> None:
    """``to_dict`` copies the instance dict when it is in field order: what ``quick_init``'s ``__init__`` and
    ``evolve`` leave, for any fields given."""
    record = AuditRecord(time=time, event=event, actor=actor, detail=detail, **values)  # type: ignore[arg-type]
    assert list(record.__dict__) == _FIELD_ORDER
    assert list(record.to_dict().items()) == list(_reference_to_dict(record).items())
    assert record.evolve(seq=9).to_dict() == _reference_to_dict(dataclasses.replace(record, seq=9))


@given(any_records, st.sampled_from(["sub_abc", None]))
def test_to_dict_is_every_field_in_field_order(record: AuditRecord, subject: str | None) -> None:
    for each in (record, record.evolve(subject=subject, seq=4)):
        assert list(each.to_dict().items()) == list(_reference_to_dict(each).items())


def test_the_per_request_builders_give_a_record_the_dataclass_would() -> None:
    ctx = RequestContext(actor="web", request_id="req_1", client_ip="203.0.113.7", user_agent="curl/8",
                         viewer_ip="198.51.100.9")  # fmt: skip
    built = [
        issued(ctx, now=1_800_000_000.25, kid="gwk_A", media_id="m1", rendition="video", subject="alice",
               url="https://cdn.example/v/m1/a.m3u8?gw_sig=x", expires_at=1_800_000_300, reason="owner",
               detail={"issuance_id": "gwi_1"}, bound_to="203.0.113.7"),
        denied(ctx, now=1_800_000_000.5, media_id="m1", rendition="video", subject=None, reason="not-permitted"),
        redeemed(ctx, now=1_800_000_001, kid="gwk_A", url="https://cdn.example/x", expires_at=5, profile="native"),
    ]  # fmt: skip
    for record in built:
        full = AuditRecord(**{name: getattr(record, name) for name in _FIELD_ORDER})
        assert record == full and list(record.__dict__) == list(full.__dict__)
        assert record.leaf_bytes(3) == full.leaf_bytes(3)


@settings(max_examples=300)
@given(st.dictionaries(_any_text, _json, max_size=4))
def test_the_stored_detail_text_is_json_dumps_sorted(detail: dict[str, object]) -> None:
    """Without the leaf pass's text, ``rows.audit_values`` writes what ``json.dumps(sort_keys=True)`` wrote."""
    record = AuditRecord(1.0, AuditEvent.URL_ISSUED, "web", detail=detail)
    try:
        expected: object = json.dumps(detail, sort_keys=True)
    except (TypeError, ValueError) as exc:
        expected = type(exc)
    try:
        got: object = rows.audit_values(record)[14]
    except (TypeError, ValueError) as exc:
        got = type(exc)
    assert got == expected


def _shuffled(record: AuditRecord) -> AuditRecord:
    """The same record with its instance dict in another order (nothing here makes one: the fallback's case)."""
    odd = object.__new__(AuditRecord)
    odd.__dict__.update(reversed(list(vars(record).items())))
    return odd


@settings(max_examples=300)
@given(any_records, st.sampled_from(["as built", "evolved", "placed", "shuffled"]))
def test_to_dict_is_every_field_in_field_order_however_the_record_was_made(record: AuditRecord, made: str) -> None:
    made_as = {
        "as built": record,
        "evolved": record.evolve(seq=5),
        "placed": record.at(5),
        "shuffled": _shuffled(record),
    }
    record = made_as[made]
    data = record.to_dict()
    assert list(data.items()) == list(_reference_to_dict(record).items())
    assert data["detail"] is not record.detail  # a copy: the caller may change it


# Records whose fields hold what their annotations do not promise (a float or a dict beside time and detail, a
# str subclass, bytes): stored_parts' quick look at a record's values must take the general walk for them.
_odd = st.one_of(_scalars, st.dictionaries(_any_text, _scalars, max_size=2), st.sampled_from([AuditEvent.URL_ISSUED]),
                 st.binary(max_size=3), st.lists(_scalars, max_size=2))  # fmt: skip
odd_records = st.builds(
    AuditRecord,
    time=st.one_of(_floats, st.integers(0, 2_000_000_000)),
    event=st.sampled_from(list(AuditEvent)),
    actor=st.one_of(_any_text, _odd),
    request_id=_odd,
    kid=_odd,
    media_id=_odd,
    expires_at=_odd,
    reason=_odd,
    detail=st.dictionaries(_any_text, _json, max_size=3),
    retention=st.sampled_from(["engineer", "viewer"]),
)


@settings(max_examples=1000)
@given(odd_records)
def test_stored_parts_hash_json_modules_bytes_whatever_the_fields_hold(record: AuditRecord) -> None:
    data = record.to_dict()
    data.pop("seq")
    expected = _json_module(data)
    try:
        body, after, _ = record.stored_parts()
    except (TypeError, ValueError) as exc:
        assert expected is type(exc)
        return
    assert isinstance(expected, bytes)
    assert body == hashlib.sha256(expected).digest()
    assert after == record.leaf_parts()[1]


@given(any_records, st.integers(1, 10**12))
def test_a_record_placed_at_a_position_is_the_record_evolve_gives(record: AuditRecord, seq: int) -> None:
    placed = record.at(seq)
    assert placed == record.evolve(seq=seq) == dataclasses.replace(record, seq=seq)
    assert list(placed.__dict__) == list(record.evolve(seq=seq).__dict__)
    assert record.seq is None and placed is not record  # the record itself is not changed
