"""A batch does its shared work once and judges every item as issuing it alone would (issue 18).

The issuer works out per call what the items share (the request's masked fields, the key for each kind of
profile, the issuance ids) and builds the batch's one audit record without a record per URL; detection reads a
batch record's URLs from its list; the revocation lookup is one call per URL. Each shortcut is held here to what
it replaced: the batch's outcomes and audit records to issuing each item singly over many random mixes
(refused and allowed items, revoked links and grants, missing grants, unknown media, missing renditions,
per-item profiles, duplicates, bindings); ``call_records`` to ``batched`` over ``records.issued``; the watcher's
reading of a batch record to its reading of ``unbatched``; ``newest_revocation`` to the two lookups it joins.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.alerts.outbox import Outbox
from gateway.alerts.watch import Watcher, WatchPolicy
from gateway.audit import records as audit
from gateway.audit.batch import IssuedUrl, batched, call_records, unbatched
from gateway.audit.log import Pending
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext
from gateway.config import load_config
from gateway.errors import Forbidden, GatewayError
from gateway.model import KeyAlgorithm, Permission, Principal, PrincipalKind, Rendition, Viewer, Visibility
from gateway.services import Services, open_services
from gateway.signing.calls import Call
from gateway.signing.issuance import Outcome, SignItem
from gateway.state.view import StateView
from gateway.store.base import RevokedPath
from tests.dialect_fixtures import install_profiles
from tests.support import ADMIN, Clock, World, init_data_dir

MEDIA = ["m0", "m1", "m1", "m2", "m3", "pub", "pub", "other", "gone", "cut", "videoonly", "nope"]
PROFILE_NAMES = [None] * 8 + ["native", "akamai", "bunny", "cf", "missing"]
TTLS = [None] * 8 + [60, 3600, 0, 10**9]
BINDINGS = [None, None, "203.0.113.9", "::ffff:198.51.100.4", "2001:db8::1"]
ALICE = Viewer("alice", frozenset({"w1"}), source="asserted")
VIEWERS = [None, ALICE, ALICE, ALICE, Viewer("bob", frozenset({"w2"}), source="asserted")]


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    init_data_dir(tmp_path)  # runs its own event loop: not from an async fixture
    return tmp_path


@pytest.fixture
async def services(initialised: Path, clock: Clock) -> AsyncIterator[Services]:
    install_profiles(initialised)  # every dialect's profile: cf (ECDSA keys), akamai and bunny (shared secrets)
    opened = await open_services(load_config(initialised, environ={}), clock=clock)
    yield opened
    await opened.close()


async def _world(services: Services, clock: Clock) -> World:
    """Principals of each kind, media of each visibility, a deleted item, revoked links, live and revoked grants."""
    world = World(services, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.principal("eng", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.principal("thumbs", Permission.SIGN, Permission.SIGN_ON_BEHALF, renditions={Rendition.THUMBNAIL})
    await world.principal("keyless", Permission.SIGN, key=None)
    # Keys of two kinds, the newest RSA and linked to a CloudFront id: each profile's key is a different one.
    await world.principal("multi", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    clock.advance(1)
    await services.admin.create_key(ADMIN, "multi", KeyAlgorithm.ECDSA_P256, clock(), external_id="K2JCJMDEHXQW5F")
    for media_id in ("m0", "m1", "m2", "m3", "gone", "cut"):
        await world.media(media_id)
    await world.media("pub", owner="carol", visibility=Visibility.PUBLIC)
    await world.media("other", owner="bob", workspace="w2", visibility=Visibility.WORKSPACE)
    paths = {Rendition.VIDEO: "/v/videoonly/master.m3u8"}
    await services.admin.put_media(ADMIN, "videoonly", "alice", "w1", Visibility.PRIVATE, paths, clock())
    await services.admin.delete_media(ADMIN, "gone", clock())
    await services.admin.revoke_links(ADMIN, "cut", "leaked", clock())
    for media_id in ("m1", "m2"):
        await services.admin.add_grant(ADMIN, "eng", media_id, "ticket 7", 3600, clock())
    revoked = await services.admin.add_grant(ADMIN, "eng", "m3", "ticket 8", 3600, clock())
    await services.admin.revoke_grant(ADMIN, revoked.id, clock())
    await services.admin.add_grant(ADMIN, "eng", "m0", "ticket 9", 30, clock())  # ends before most URLs would
    clock.advance(5)  # past the revocations' second: URLs issued now are not refused from birth
    await services.state.catch_up()
    return world


def _items(rng: random.Random) -> list[SignItem]:
    items = []
    for _ in range(rng.randint(1, 12)):
        prefix = rng.random() < 0.3
        items.append(SignItem(
            media_id=rng.choice(MEDIA), rendition=rng.choice(list(Rendition)), ttl=rng.choice(TTLS),
            client_ip=rng.choice(BINDINGS), prefix=prefix, profile=rng.choice(PROFILE_NAMES),
            path_token=prefix and rng.random() < 0.5,
        ))  # fmt: skip
    if rng.random() < 0.3:
        items += rng.sample(items, min(len(items), 3))  # duplicates
    rng.shuffle(items)
    return items


def _answer(outcome: Outcome) -> tuple[Any, ...]:
    """What a caller sees of an item (the issuance id aside: it is random per URL)."""
    if outcome.issued is None:
        error = outcome.error
        assert error is not None
        return ("refused", type(error), error.status, error.code, error.reason, error.message)
    issued = outcome.issued
    cookies = {name: "" if name.endswith("Signature") else value for name, value in issued.cookies.items()}
    return ("issued", _RANDOMISED.sub("Signature=", issued.url), issued.expires, issued.kid, issued.profile, cookies)


# ECDSA signatures (CloudFront) are randomised: the rest of such a URL is compared.
_RANDOMISED = re.compile(r"Signature=[^&]*")


def _per_url(records: list[AuditRecord]) -> tuple[list[AuditRecord], list[AuditRecord]]:
    """Each item's record as a single issuance writes it (its random issuance id aside): the issued ones in
    order, the refused ones in order (a batch's record stands where its first URL was)."""
    found = [url for record in records for url in unbatched(record)]
    found = [r.evolve(detail={k: v for k, v in r.detail.items() if k != "issuance_id"},
                      url_sha256=None if r.detail.get("dialect") == "cloudfront" else r.url_sha256)
             for r in found]  # fmt: skip
    issued = [r for r in found if r.event is AuditEvent.URL_ISSUED]
    return issued, [r for r in found if r.event is not AuditEvent.URL_ISSUED]


class _Submitted:
    """The records the issuer hands the audit batcher, kept for comparison (then committed as usual)."""

    def __init__(self, services: Services) -> None:
        self.groups: list[list[AuditRecord]] = []
        batcher = services.issuer._batcher
        self._submit = batcher.submit
        batcher.submit = self._record  # type: ignore[method-assign]

    async def _record(self, pending: Pending) -> list[int]:
        self.groups.append(list(pending.records))
        return await self._submit(pending)


async def _issue(services: Services, pid: str, viewer: Viewer | None, items: list[SignItem], ctx: RequestContext,
                 now: float) -> list[Outcome] | tuple[type, str]:  # fmt: skip
    principal = services.state.view.principals[pid]
    try:
        return await services.issuer.issue(principal, viewer, items, ctx, now)
    except GatewayError as error:  # the call as a whole refused: the same for the batch as for its first item
        return (type(error), error.message)


async def test_a_batch_answers_and_records_each_item_as_issuing_it_alone_would(services: Services,
                                                                               clock: Clock) -> None:  # fmt: skip
    await _world(services, clock)
    submitted = _Submitted(services)
    rng = random.Random(18)
    issued = refused = 0
    reasons: Counter[str] = Counter()
    for _ in range(150):
        # The view confirmed current now: on a loaded machine the poll may not have run within stale_after (2 s
        # of real time), and a stale view refuses whole calls, which this comparison would skip.
        await services.state.catch_up()
        pid = rng.choice(["web", "web", "multi", "multi", "eng", "eng", "thumbs", "keyless"])
        viewer = None if pid == "eng" and rng.random() < 0.8 else rng.choice(VIEWERS)
        viewer_ip = "198.51.100.23" if viewer is not None and rng.random() < 0.3 else None
        ctx = RequestContext(actor=pid, request_id="r", client_ip="192.0.2.10", user_agent="t/1", viewer_ip=viewer_ip)
        items = _items(rng)
        now = clock()
        singles = [await _issue(services, pid, viewer, [item], ctx, now) for item in items]
        single_records = [r for group in submitted.groups for r in group]
        submitted.groups.clear()
        whole = await _issue(services, pid, viewer, items, ctx, now)
        failed = [s for s in singles if isinstance(s, tuple)]
        if failed:  # a call-level refusal (none expected here): the batch is refused as its first item was
            assert whole == failed[0]
            continue
        assert isinstance(whole, list)
        assert [_answer(o) for o in whole] == [_answer(o) for s in singles for o in s]  # type: ignore[union-attr]
        [batch_records] = submitted.groups
        submitted.groups.clear()
        assert _per_url(batch_records) == _per_url(single_records)
        urls = sum(o.issued is not None for o in whole)
        assert sum(r.event is AuditEvent.URL_ISSUED_BATCH for r in batch_records) == (urls >= 2)
        issued += urls
        refused += len(items) - urls
        reasons.update(o.error.reason if o.error else "issued" for o in whole)
        clock.advance(rng.choice([0, 1, 61]))
    assert issued > 150 and refused > 150, (issued, refused)  # both kinds well exercised
    every = {"invalid_request", "not-permitted", "not_found", "no-prefix", "no_active_key", "rendition-not-allowed"}
    assert every <= reasons.keys(), reasons


async def test_a_key_revoked_between_two_items_is_not_used_for_the_second(services: Services, clock: Clock) -> None:
    """The key chosen for the call's first item is kept only while the state view is unchanged."""
    world = World(services, clock)
    first = await world.principal("web", Permission.SIGN)
    assert first is not None
    clock.advance(1)
    second = await services.admin.create_key(ADMIN, "web", KeyAlgorithm.ED25519, clock())
    await services.state.catch_up()
    issuer, principal = services.issuer, services.state.view.principals["web"]
    call = Call(principal, None, RequestContext(actor="web"), clock(), False, 2)
    assert (await issuer.keys.choose(principal.id, call.now, (None, False), call.keys)).row.kid == second.kid
    await services.admin.revoke_key(ADMIN, second.kid, "leaked", clock())
    await services.state.catch_up()
    assert (await issuer.keys.choose(principal.id, call.now, (None, False), call.keys)).row.kid == first.kid
    await services.admin.revoke_key(ADMIN, first.kid, "leaked", clock())
    await services.state.catch_up()
    with pytest.raises(Forbidden):
        await issuer.keys.choose(principal.id, call.now, (None, False), call.keys)


# -- the batch record built directly vs folded from single records --

_ADDRESSES = st.sampled_from([None, "203.0.113.7", "2001:db8::5", "::ffff:192.0.2.1", "not-an-ip", ""])
_TEXT = st.text(max_size=12)
_URL = st.builds(
    IssuedUrl,
    kid=st.sampled_from(["gwk_a", "gwk_b"]), media_id=_TEXT, rendition=st.sampled_from(["video", "thumbnail"]),
    url=_TEXT, expires_at=st.integers(0, 2**40), reason=st.sampled_from(["owner", "grant", "public"]),
    detail=st.fixed_dictionaries({"issuance_id": _TEXT, "profile": _TEXT, "dialect": _TEXT},
                                 optional={"grant_id": _TEXT}),
    bound_to=st.sampled_from([None, "203.0.113.9", "198.51.100.0/24", "2001:db8::1", "10.0.0.0/8"]),
)  # fmt: skip


def _denied(ctx: RequestContext, now: float, subject: str | None, retention: str) -> st.SearchStrategy[AuditRecord]:
    return st.builds(lambda m, r: audit.denied(ctx, now=now, media_id=m, rendition="video", subject=subject, reason=r,
                                               retention=retention), _TEXT, _TEXT)  # fmt: skip


@st.composite
def _calls(draw: st.DrawFn) -> tuple[RequestContext, float, str | None, str, list[AuditRecord | IssuedUrl]]:
    ctx = RequestContext(
        actor=draw(_TEXT), request_id=draw(st.none() | _TEXT), client_ip=draw(_ADDRESSES),
        user_agent=draw(st.none() | st.text(max_size=300)), viewer_ip=draw(_ADDRESSES),
    )  # fmt: skip
    now = draw(st.floats(0, 2e9, allow_nan=False))
    subject, retention = draw(st.none() | _TEXT), draw(st.sampled_from([audit.VIEWER, audit.ENGINEER]))
    logged = draw(st.lists(_URL | _denied(ctx, now, subject, retention), max_size=8))
    return ctx, now, subject, retention, logged


@settings(max_examples=300, deadline=None)
@given(_calls())
def test_the_batch_record_built_directly_is_the_one_folded_from_single_records(
    call: tuple[RequestContext, float, str | None, str, list[AuditRecord | IssuedUrl]],
) -> None:
    ctx, now, subject, retention, logged = call
    singles = [
        audit.issued(ctx, now=now, kid=e.kid, media_id=e.media_id, rendition=e.rendition, subject=subject, url=e.url,
                     expires_at=e.expires_at, reason=e.reason, detail=e.detail, retention=retention,
                     bound_to=e.bound_to)
        if isinstance(e, IssuedUrl) else e
        for e in logged
    ]  # fmt: skip
    built = call_records(ctx, now, subject, retention, logged)
    assert built == batched(singles)
    assert [r.body_sha256() for r in built] == [r.body_sha256() for r in batched(singles)]


# -- detection: a batch record read from its list vs each URL's record --


def _watcher(view: StateView) -> Watcher:
    policy = WatchPolicy(learning_seconds=0.0, rate_floor=1, rate_factor=1.0, cooldown=0.0)
    watcher = Watcher(None, None, Outbox.__new__(Outbox), view, policy, lambda: 0.0)  # type: ignore[arg-type]
    watcher.watching = True
    return watcher


@st.composite
def _batches(draw: st.DrawFn) -> list[AuditRecord]:
    found = []
    for _ in range(draw(st.integers(1, 4))):
        urls = draw(st.lists(_URL, min_size=2, max_size=6))
        ctx = RequestContext(actor=draw(st.sampled_from(["eng", "web"])), client_ip=draw(_ADDRESSES),
                             viewer_ip=draw(_ADDRESSES))  # fmt: skip
        time = draw(st.floats(0, 1e6, allow_nan=False))
        found += call_records(ctx, time, "alice", audit.VIEWER, urls)
    return found


@settings(max_examples=200, deadline=None)
@given(_batches())
def test_detection_reads_a_batch_record_as_it_reads_each_of_its_urls(batches: list[AuditRecord]) -> None:
    view = StateView()
    view.put_principal(_principal("eng", PrincipalKind.ENGINEER))
    view.put_principal(_principal("web", PrincipalKind.SERVICE))
    direct, per_url = _watcher(view), _watcher(view)
    for record in batches:
        alerts = direct._observe(record)
        expected = [a for url in unbatched(record) for a in per_url._observe(url)]
        assert alerts == expected
    assert direct.index._networks == per_url.index._networks
    assert direct._to_share == per_url._to_share
    assert repr(direct.rates.__dict__) == repr(per_url.rates.__dict__)
    assert repr(direct.baselines.__dict__) == repr(per_url.baselines.__dict__)


def _principal(pid: str, kind: PrincipalKind) -> Principal:
    return Principal(id=pid, kind=kind, permissions=frozenset({Permission.SIGN}), created_at=0.0)


# -- one revocation lookup per URL vs the two it joins --

_PATHS = st.sampled_from(["/v/a/master.m3u8", "/v/a/", "/v/", "/t/a.jpg", "/t/", "/v/b/x.ts", "/v/b/"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b"]), _PATHS, st.sampled_from([None, "eng", "web"]),
                       st.floats(0, 100, allow_nan=False)), max_size=6),
    st.lists(_PATHS, min_size=1, max_size=2), st.sampled_from(["eng", "web"]),
)  # fmt: skip
def test_the_joined_revocation_lookup_is_the_newest_of_the_two(
    rows: list[tuple[str, str, str | None, float]], paths: list[str], principal_id: str
) -> None:
    view = StateView()
    by_media: dict[str, list[RevokedPath]] = {}
    for media_id, path, grantee, at in rows:
        by_media.setdefault(media_id, []).append(RevokedPath(media_id, path, path.endswith("/"), at, grantee))
    for media_id, revoked in by_media.items():
        view.put_link_revocations(media_id, revoked)
    found = [at for p in paths for at in (view.links_revoked_at(p), view.grant_revoked_at(p, principal_id))]
    expected = max((at for at in found if at is not None), default=None)
    assert view.newest_revocation(paths, principal_id) == expected


def test_a_single_issuance_record_is_unchanged() -> None:
    """One URL keeps its own ``url:issued`` record, field by field as it always was: the caller's and the viewer's
    addresses and the binding masked, the user agent cut to 256 characters, the URL kept only as its digest."""
    ctx = RequestContext(actor="web", request_id="r", client_ip="203.0.113.7", user_agent="curl/8 " + "x" * 300,
                         viewer_ip="198.51.100.2")  # fmt: skip
    detail = {"issuance_id": "gwi_1", "profile": "native", "dialect": "native"}
    url = IssuedUrl("gwk_a", "m1", "video", "https://x/v", 99, "owner", detail, "192.0.2.1")
    [record] = call_records(ctx, 5.0, "alice", audit.VIEWER, [url])
    assert record == audit.AuditRecord(
        time=5.0, event=audit.AuditEvent.URL_ISSUED, actor="web", request_id="r", kid="gwk_a", media_id="m1",
        rendition="video", subject="alice", url_sha256=hashlib.sha256(b"https://x/v").hexdigest(), expires_at=99,
        decision="allow", reason="owner", client_ip="203.0.113.0/24", user_agent=("curl/8 " + "x" * 300)[:256],
        detail={**detail, "viewer_network": "198.51.100.0/24", "bound_to": "192.0.2.0/24"}, retention=audit.VIEWER,
    )  # fmt: skip
    assert list(record.detail) == [*detail, "viewer_network", "bound_to"]
    unbound = call_records(RequestContext(actor="web"), 5.0, None, audit.VIEWER, [url._replace(bound_to=None)])[0]
    assert (unbound.client_ip, unbound.user_agent, unbound.detail) == (None, None, detail)
