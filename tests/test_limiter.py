"""The limiter and its buckets without a server: exact levels, waits, refusals and trip records.

tests/test_limits.py drives the limits through the API and two replicas; these pin each rule of
``gateway.limits.buckets`` and ``gateway.limits.limiter`` on its own (tools/mutate.py found what the API tests
could not tell apart: docs/mutation-testing.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.audit.records import VIEWER, AuditEvent
from gateway.errors import PayloadTooLarge, RateLimited, StoreUnavailable
from gateway.limits.buckets import Bucket, Rule, retry_after
from gateway.limits.limiter import ACTOR, Limiter, Rules
from gateway.observe.metrics import Tally
from gateway.store.base import BucketUse

OFF = Rule(0, 0)


def _limiter(principal: Rule = OFF, key: Rule = OFF, redirect: Rule = OFF, **kwargs: Any) -> Limiter:
    return Limiter(Rules(principal, key, redirect), **kwargs)


def _refusal(call: Any) -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        call()
    return refused.value


# --- buckets ------------------------------------------------------------------------------------------------------


def test_a_rule_is_enabled_by_a_positive_rate() -> None:
    assert (Rule(0.1, 0).enabled, Rule(0, 5).enabled, Rule(-1, 5).enabled) == (True, False, False)


def test_a_full_bucket_holds_its_burst_as_of_now() -> None:
    bucket = Bucket.full(Rule(2, 3), now=10)
    assert (bucket.level, bucket.at, bucket.used, bucket.reporting) == (3.0, 10, 0.0, 0.0)


def test_take_grants_exactly_the_level_and_says_how_long_to_wait() -> None:
    bucket = Bucket.full(Rule(2, 3), now=0)
    assert bucket.take(3, 0) == 0.0 and (bucket.level, bucket.used) == (0.0, 3)
    assert bucket.take(1, 0) == 0.5 and (bucket.level, bucket.used) == (0.0, 3)  # a refusal takes nothing
    assert bucket.take(2, 0.5) == 0.5  # one token back, two asked
    assert bucket.take(1, 0.5) == 0.0 and bucket.level == 0.0 and bucket.at == 0.5


def test_take_never_refills_backwards_in_time() -> None:
    bucket = Bucket.full(Rule(1, 5), now=10)
    bucket.take(5, 10)
    assert bucket.take(1, 9) == 1.0 and bucket.at == 10  # a clock read earlier elsewhere: no refill, no rewind
    assert bucket.take(1, 10) == 1.0


def test_drain_adopt_and_restore_account_for_every_token() -> None:
    bucket = Bucket.full(Rule(1, 10), now=0)
    bucket.take(4, 0)
    assert bucket.drain() == 4 and (bucket.used, bucket.reporting) == (0.0, 4)
    bucket.restore()  # the report failed
    assert (bucket.used, bucket.reporting) == (4, 0.0)
    assert bucket.drain() == 4
    bucket.take(1, 0)
    bucket.adopt(shared_level=50, at=2)  # never more than the burst, less what was taken meanwhile
    assert (bucket.level, bucket.at, bucket.reporting) == (9.0, 2, 0.0)
    bucket.adopt(shared_level=5, at=1)  # an older answer does not move the bucket's time back
    assert (bucket.level, bucket.at) == (4.0, 2)


@pytest.mark.parametrize(
    ("level", "at", "used", "reporting", "now", "idle"),
    [(5, 0, 0, 0, 0, True), (4, 0, 0, 0, 0, False), (4, 0, 0, 0, 1, True), (4, 0, 0, 0, 0.5, False),
     (5, 0, 1, 0, 9, False), (5, 0, 0, 1, 9, False), (4, 10, 0, 0, 5, False)],
)  # fmt: skip
def test_a_bucket_is_idle_when_full_again_with_nothing_to_report(
    level: float, at: float, used: float, reporting: float, now: float, idle: bool
) -> None:
    assert Bucket(Rule(1, 5), level, at, used, reporting).idle(now) is idle


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(s) for s in (0.0, 0.001, 1.0, 1.5, 2.0, 59.01)] == [1, 1, 1, 2, 2, 60]


# --- the limiter on the request path --------------------------------------------------------------------------------


def test_rules_from_config_and_any() -> None:
    assert not Rules(OFF, OFF, OFF).any
    assert Rules(Rule(1, 1), OFF, OFF).any and Rules(OFF, Rule(1, 1), OFF).any and Rules(OFF, OFF, Rule(1, 1)).any


def test_admit_takes_one_token_per_item() -> None:
    tally = Tally(1)
    limiter = _limiter(principal=Rule(1, 5), tally=tally)
    limiter.admit("web", 3, now=0)
    limiter.admit("web", 2, now=0)
    refused = _refusal(lambda: limiter.admit("web", 1, now=0))
    assert (refused.reason, refused.retry_after, refused.status) == ("rate-limited:principal", 1, 429)
    assert refused.message == "too many requests for this principal: at most 1/s (burst 5)"
    assert tally.counts == {("principal",): 1}
    limiter.admit("other", 5, now=0)  # buckets are per principal


def test_a_batch_larger_than_the_burst_is_refused_at_once_and_counted_as_a_trip() -> None:
    limiter = _limiter(principal=Rule(1, 5))
    limiter.admit("web", 5, now=0)  # exactly the burst: allowed
    limiter.admit("web", 1, now=1)
    with pytest.raises(PayloadTooLarge) as refused:
        limiter.admit("web", 6, now=100)
    assert refused.value.message == (
        "a batch of 6 items is more than this principal may ever be issued at once "
        "(limits.principal_burst = 5): send at most 5 per request"
    )
    [record] = limiter.due_records(100)
    assert (record.actor, record.detail["refused"], record.detail["since"]) == ("web", 1, 100)


def test_exempt_principals_and_disabled_rules_are_never_limited() -> None:
    limiter = _limiter(principal=Rule(1, 1), exempt=frozenset({"pages"}))
    for _ in range(3):
        limiter.admit("pages", 1, now=0)
        _limiter().admit("web", 100, now=0)
    limiter.admit("web", 1, now=0)
    assert _refusal(lambda: limiter.admit("web", 1, now=0)).reason == "rate-limited:principal"


def test_signing_is_limited_per_key_except_for_an_exempt_principal_s_keys() -> None:
    owners = {"k-pages": "pages", "k-web": "web"}
    limiter = _limiter(key=Rule(1, 2), exempt=frozenset({"pages"}), owner_of=owners.get)
    for _ in range(5):
        limiter.signing("k-pages", now=0)
    limiter.signing("k-web", now=0)
    limiter.signing("k-web", now=0)
    refused = _refusal(lambda: limiter.signing("k-web", now=0))
    assert (refused.reason, refused.retry_after) == ("rate-limited:key", 1)
    unexempt = _limiter(key=Rule(1, 1), owner_of=owners.get)  # no exemptions: the owner is never asked
    unexempt.signing("k-pages", now=0)
    assert _refusal(lambda: unexempt.signing("k-pages", now=0)).reason == "rate-limited:key"
    _limiter().signing("k-web", now=0)


def test_redirects_are_limited_per_client_network() -> None:
    limiter = _limiter(redirect=Rule(0.5, 2))
    limiter.redirect("203.0.113.7", now=0)
    limiter.redirect("203.0.113.200", now=0)  # the same /24
    refused = _refusal(lambda: limiter.redirect("203.0.113.9", now=0))
    assert (refused.reason, refused.retry_after) == ("rate-limited:network", 2)
    limiter.redirect("198.51.100.1", now=0)
    limiter.redirect(None, now=0)
    limiter.redirect("garbage", now=0)  # no address: one shared "unknown" bucket
    assert _refusal(lambda: limiter.redirect(None, now=0)).reason == "rate-limited:network"
    for _ in range(3):
        _limiter().redirect("203.0.113.7", now=0)


# --- trips and their records -----------------------------------------------------------------------------------------


def test_trip_records_name_their_scope_subject_and_rule() -> None:
    limiter = _limiter(principal=Rule(1, 1), key=Rule(2, 1), redirect=Rule(3, 1))
    limiter.admit("web", 1, now=0)
    for _ in range(3):
        _refusal(lambda: limiter.admit("web", 1, now=0.5))
    limiter.signing("gwk_1", now=0)
    _refusal(lambda: limiter.signing("gwk_1", now=0.1))
    limiter.redirect("203.0.113.7", now=0)
    _refusal(lambda: limiter.redirect("203.0.113.7", now=0.2))
    principal, key, network = limiter.due_records(60)
    assert principal.event is AuditEvent.LIMIT_EXCEEDED and principal.reason == "rate-limited"
    assert (principal.actor, principal.kid, principal.detail) == (
        "web",
        None,
        {"scope": "principal", "refused": 3, "since": 0.5, "rate": 1, "burst": 1},
    )
    assert (key.actor, key.kid, key.detail) == (
        ACTOR,
        "gwk_1",
        {"scope": "key", "refused": 1, "since": 0.1, "rate": 2, "burst": 1},
    )
    assert (network.actor, network.client_ip, network.retention, network.detail) == (
        ACTOR,
        "203.0.113.0/24",
        VIEWER,
        {"scope": "network", "refused": 1, "since": 0.2, "rate": 3, "burst": 1},
    )
    assert principal.retention != VIEWER
    assert limiter.due_records(61) == []  # counted and reset
    limiter.admit("web", 1, now=100)
    _refusal(lambda: limiter.admit("web", 1, now=100))
    assert limiter.due_records(119.9) == []  # within a minute of the last record: wait
    [again] = limiter.due_records(120)
    assert again.detail["refused"] == 1 and again.detail["since"] == 100  # fmt: skip


# --- reconciling with the store -----------------------------------------------------------------------------------


class _Limits:
    def __init__(self, answer: dict[str, float] | None) -> None:
        self.answer = answer
        self.reported: list[list[BucketUse]] = []

    async def reconcile(self, uses: list[BucketUse], now: float) -> dict[str, float]:
        self.reported.append(uses)
        if self.answer is None:
            raise StoreUnavailable("down")
        return self.answer


class _Store:
    def __init__(self, answer: dict[str, float] | None) -> None:
        self.limits = _Limits(answer)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        yield self


async def test_reconcile_reports_every_bucket_and_adopts_the_shared_level() -> None:
    limiter = _limiter(principal=Rule(1, 10), key=Rule(1, 10))
    limiter.admit("web", 4, now=0)
    limiter.signing("gwk_1", now=0)
    store = _Store({"principal:web": 2.0})
    await limiter.reconcile(store, now=0)  # type: ignore[arg-type]
    [uses] = store.limits.reported
    assert uses == [BucketUse("principal:web", 1, 10, 4), BucketUse("key:gwk_1", 1, 10, 1)]
    assert limiter._buckets["principal:web"].level == 2.0
    assert limiter._buckets["key:gwk_1"].level == 9.0  # not in the answer: left as it was


async def test_a_failed_reconciliation_counts_the_use_again_next_time() -> None:
    limiter = _limiter(principal=Rule(1, 10))
    limiter.admit("web", 4, now=0)
    with pytest.raises(StoreUnavailable):
        await limiter.reconcile(_Store(None), now=0)  # type: ignore[arg-type]
    store = _Store({})
    await limiter.reconcile(store, now=0)  # type: ignore[arg-type]
    assert store.limits.reported == [[BucketUse("principal:web", 1, 10, 4)]]


async def test_full_buckets_are_forgotten_and_a_lone_process_reports_nothing() -> None:
    limiter = _limiter(principal=Rule(1, 2))
    limiter.admit("web", 1, now=0)
    limiter.admit("idle", 1, now=0)
    store = _Store({"principal:web": 1.0, "principal:idle": 1.0})
    await limiter.reconcile(store, now=0.5)  # type: ignore[arg-type]
    assert sorted(limiter._buckets) == ["principal:idle", "principal:web"]
    assert limiter._buckets["principal:web"].at == 0.5
    limiter.admit("web", 1, now=1)
    await limiter.reconcile(store, now=1.2)  # type: ignore[arg-type]
    assert sorted(limiter._buckets) == ["principal:idle", "principal:web"]  # neither full again yet
    await limiter.reconcile(store, now=5)  # type: ignore[arg-type]
    assert limiter._buckets == {} and len(store.limits.reported) == 2  # nothing held: no round trip
    alone = _limiter(principal=Rule(1, 5))
    alone.shared = False
    alone.admit("web", 3, now=0)
    await alone.reconcile(store, now=0)  # type: ignore[arg-type]
    assert alone._buckets["principal:web"].used == 0.0 and len(store.limits.reported) == 2


def test_the_trip_record_is_frozen_data() -> None:
    limiter = _limiter(principal=Rule(1, 1))
    limiter.admit("web", 1, now=0)
    _refusal(lambda: limiter.admit("web", 1, now=0))
    [record] = limiter.due_records(0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.actor = "x"  # type: ignore[misc]


def test_the_first_refusal_since_the_last_record_is_the_trip_s_start() -> None:
    limiter = _limiter(principal=Rule(1, 1))
    limiter.admit("web", 1, now=0)
    for at in (0.25, 0.5, 0.75):
        _refusal(lambda at=at: limiter.admit("web", 1, now=at))
    [record] = limiter.due_records(60)
    assert (record.detail["refused"], record.detail["since"]) == (3, 0.25)


def test_a_redirect_without_an_address_trips_the_unknown_network_and_is_recorded() -> None:
    limiter = _limiter(redirect=Rule(1, 1))
    limiter.redirect(None, now=0)
    _refusal(lambda: limiter.redirect(None, now=0))
    [record] = limiter.due_records(0)
    assert (record.actor, record.client_ip, record.detail["scope"]) == (ACTOR, None, "network")
    assert list(limiter._buckets) == ["network:unknown"]


def test_without_exemptions_a_key_s_owner_is_never_looked_up() -> None:
    def owner_of(kid: str) -> str | None:
        raise AssertionError("looked up")  # a lookup per signing, for nothing

    limiter = _limiter(key=Rule(1, 5), owner_of=owner_of)
    limiter.signing("gwk_1", now=0)


class _Forgetting(_Limits):
    def __init__(self, answer: dict[str, float] | None) -> None:
        super().__init__(answer)
        self.forgotten: list[float] = []

    async def forget_full(self, now: float) -> None:
        self.forgotten.append(now)


class _Batcher:
    def __init__(self) -> None:
        self.submitted: list[Any] = []

    async def submit(self, pending: Any) -> None:
        self.submitted.append(pending)


def _clock(*times: float) -> Any:
    pending = list(times)

    def read() -> float:
        if not pending:
            raise asyncio.CancelledError  # ends the loop, as the app's cleanup does
        return pending.pop(0)

    return read


@pytest.mark.parametrize(("shared", "forgotten"), [(True, [0, 60, 125]), (False, [])])
async def test_the_loop_reconciles_every_time_and_forgets_full_buckets_once_a_minute(
    shared: bool, forgotten: list[float]
) -> None:
    limiter = _limiter(principal=Rule(1, 1))
    limiter.shared = shared
    limiter.admit("web", 1, now=0)
    _refusal(lambda: limiter.admit("web", 1, now=0))
    store, batcher = _Store({"principal:web": 0.0}), _Batcher()
    store.limits = _Forgetting({"principal:web": 0.0})
    with pytest.raises(asyncio.CancelledError):
        await limiter.run(store, batcher, _clock(0, 30, 59.9, 60, 61, 125), every=0)  # type: ignore[arg-type]
    assert store.limits.forgotten == forgotten
    assert len(store.limits.reported) == (1 if shared else 0)  # the bucket is full again after a second
    [pending] = batcher.submitted
    assert [r.detail["scope"] for r in pending.records] == ["principal"]


async def test_the_loop_goes_on_when_the_store_fails() -> None:
    limiter = _limiter(principal=Rule(1, 10))
    store, batcher = _Store(None), _Batcher()
    store.limits = _Forgetting(None)
    limiter.admit("web", 1, now=0)
    with pytest.raises(asyncio.CancelledError):
        await limiter.run(store, batcher, _clock(0, 0.5), every=0)  # type: ignore[arg-type]
    assert len(store.limits.reported) == 2 and store.limits.forgotten == []


def test_rules_are_frozen_values() -> None:
    rules = Rules(Rule(1, 2), OFF, OFF)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.principal.rate = 100  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.principal = Rule(100, 100)  # type: ignore[misc]
    assert {Rule(1, 2): "hashable"}[Rule(1, 2)] == "hashable"
