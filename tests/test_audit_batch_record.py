"""The batch record's pure core (gateway.audit.batch): folding a call's issuances into one record, and reading
each URL back out of it as the single record it stands for."""

from __future__ import annotations

from gateway.audit.batch import batch, batch_urls, batched, unbatched
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext, denied, issued

CTX = RequestContext(actor="web", request_id="r1", client_ip="203.0.113.9", user_agent="ua/1", viewer_ip="198.51.100.7")
NOW = 1_800_000_000.0


def _issued(media_id: str, bound_to: str | None = None, grant: bool = False) -> AuditRecord:
    detail = {"issuance_id": f"gwi_{media_id}", "profile": "default", "dialect": "native"}
    detail |= {"grant_id": "g1"} if grant else {}
    return issued(CTX, now=NOW, kid="gwk_a", media_id=media_id, rendition="video", subject="alice",
                  url=f"https://cdn/{media_id}", expires_at=1_800_000_600, reason="owner", detail=detail,
                  bound_to=bound_to)  # fmt: skip


def _denied(media_id: str) -> AuditRecord:
    return denied(CTX, now=NOW, media_id=media_id, rendition="video", subject="alice", reason="not_found")


def test_a_call_that_issued_one_url_keeps_its_records_as_they_are() -> None:
    one, refused = _issued("m1"), _denied("gone")
    assert batched([refused, one]) == [refused, one]
    assert batched([refused, one])[1] is one  # the very record: its leaf is what it always was


def test_two_or_more_issued_urls_fold_into_one_record_where_the_first_was() -> None:
    refused, a, b = _denied("gone"), _issued("m1"), _issued("m2", bound_to="192.0.2.7")
    other = _denied("x")
    [first, folded, last] = batched([refused, a, other, b])
    assert (first, last) == (refused, other)
    assert folded.event is AuditEvent.URL_ISSUED_BATCH
    assert folded.detail == {
        "urls": [
            {"url_sha256": a.url_sha256, "media_id": "m1", "rendition": "video", "expires_at": 1_800_000_600,
             "kid": "gwk_a", "reason": "owner", "issuance_id": "gwi_m1", "profile": "default", "dialect": "native"},
            {"url_sha256": b.url_sha256, "media_id": "m2", "rendition": "video", "expires_at": 1_800_000_600,
             "kid": "gwk_a", "reason": "owner", "issuance_id": "gwi_m2", "profile": "default", "dialect": "native"},
        ],
        "viewer_network": "198.51.100.0/24",
        "bound_to": [None, "192.0.2.0/24"],
    }  # fmt: skip
    assert batch_urls(folded) == [(0, a.url_sha256, "m1", "video", 1_800_000_600, "gwk_a"),
                                  (1, b.url_sha256, "m2", "video", 1_800_000_600, "gwk_a")]  # fmt: skip


def test_each_url_reads_back_as_the_single_record_it_stands_for() -> None:
    records = [_issued("m1", grant=True), _issued("m2", bound_to="192.0.2.7"), _issued("m3")]
    assert unbatched(batch(records)) == records


def test_sealed_fields_are_read_from_what_reveal_returned() -> None:
    folded = batch([_issued("m1"), _issued("m2", bound_to="192.0.2.7")])
    sealed = folded.evolve(subject="sub_x", client_ip=None, user_agent=None, personal=b"...",
                           detail={"urls": folded.detail["urls"]})  # fmt: skip
    personal = {"subject": "alice", "client_ip": "203.0.113.0/24", "user_agent": "ua/1",
                "viewer_network": "198.51.100.0/24", "bound_to": [None, "192.0.2.0/24"]}  # fmt: skip
    urls = unbatched(sealed, personal)
    assert [(u.client_ip, u.detail.get("viewer_network"), u.detail.get("bound_to")) for u in urls] == [
        ("203.0.113.0/24", "198.51.100.0/24", None), ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"),
    ]  # fmt: skip
    erased = unbatched(sealed)  # the key shredded: the URLs remain, the personal fields do not
    assert [(u.media_id, u.client_ip, u.detail.get("bound_to")) for u in erased] == [("m1", None, None),
                                                                                      ("m2", None, None)]  # fmt: skip


def test_a_malformed_list_gives_no_child_rows_rather_than_a_crash() -> None:
    folded = batch([_issued("m1"), _issued("m2")])
    assert batch_urls(folded.evolve(detail={"urls": "not a list"})) == []
    assert batch_urls(folded.evolve(detail={"urls": [1, {"media_id": "m2"}]})) == [(1, None, "m2", None, None, None)]
    assert batch_urls(_issued("m1")) == []
