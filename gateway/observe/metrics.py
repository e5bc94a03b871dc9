"""The gateway's metrics, exposed at ``GET /metrics`` in the Prometheus text format.

Counting on the hot path is a plain dict increment (``Tally``), not a
``prometheus_client`` counter: measured on the CI machine, a bound labelled
child's ``inc()`` costs 0.77 µs (it takes a lock), ``labels(...).inc()``
3.9 µs, a dict increment 0.18 µs. The official client still does the rest:
the registry, the exposition format, process metrics, and the two audit
histograms (observed once per group commit, not per request). Everything
else is read at scrape time from counters the components keep anyway (cache
hits and misses, the state view's age), so a scrape costs the request path
nothing.

Labels are low-cardinality by construction: outcome, reason (a closed set in
the code), profile (configured names; a name the deployment did not
configure is counted as ``other``), cache name, scope. No key id, media id,
principal or address is ever a label. ``Tally`` also folds any key past its
bound into ``other``, so a bug cannot turn a label into an unbounded series.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gateway.audit.records import AuditRecord
from gateway.errors import ConfigError

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
OTHER = "other"
_MAX_SERIES = 200
_MIN_TOKEN = 16
# Audit group commit: an fsync on a local disk is ~0.3 ms, a PostgreSQL round trip a few ms.
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# From a revocation's commit to this process's view applying it: milliseconds locally, a poll on a replica.
_PROPAGATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def read_token(path: Path, setting: str = "metrics.token_file") -> str:
    """A bearer token from a file (``setting`` names it in errors): at least 16 characters."""
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc}") from None
    if len(token) < _MIN_TOKEN:
        raise ConfigError(f"{setting}: the token in {path} is shorter than {_MIN_TOKEN} characters")
    return token


_ALLOWED = ("allow", "ok")  # one tuple for every allowed verify, not one per request


class Tally:
    """Counts by a tuple of label values; at most ``limit`` distinct keys, the rest counted as ``other``."""

    def __init__(self, arity: int, limit: int = _MAX_SERIES) -> None:
        self.counts: dict[tuple[str, ...], int] = {}
        self._limit = limit
        self._other = (OTHER,) * arity

    def add(self, key: tuple[str, ...], n: int = 1) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += n
        elif len(counts) < self._limit:
            counts[key] = n
        else:
            counts[self._other] = counts.get(self._other, 0) + n


@dataclass(frozen=True)
class CacheStats:
    """A cache's cumulative hits and misses, read at scrape time."""

    name: str
    read: Callable[[], tuple[int, int]]


@dataclass
class Gauges:
    """Values read at scrape time; each returns None when unknown (then the series is left out)."""

    state_age: Callable[[], float | None] = lambda: None
    checkpoint_age: Callable[[], float | None] = lambda: None
    webhook_backlog: Callable[[], float | None] = lambda: None
    key_rates: Callable[[], Collection[float]] = tuple
    audit_pending: Callable[[], float | None] = lambda: None
    write_behind_waiting: Callable[[], float | None] = lambda: None
    # Raw-log and redemption entries dropped because the write-behind queue was full, by kind (cumulative).
    write_behind_dropped: Callable[[], Mapping[str, int]] = dict
    connections_open: Callable[[], float | None] = lambda: None  # set by the server (gateway.web.server)
    connections_max: Callable[[], float | None] = lambda: None
    # What freeze_start_up_heap moved out of the collector's reach: 0 in a serving process means every full
    # collection walks start-up's heap again (a loop stall of tens of ms: the p99).
    frozen_objects: Callable[[], float | None] = lambda: float(gc.get_freeze_count())


@dataclass
class Metrics:
    """Every metric of one process. Components hold the tallies they count into; nothing here does I/O."""

    profiles: frozenset[str] = frozenset()
    default: str = ""  # the profile an item names by default (signing.profile)
    token: str | None = None  # metrics.token_file's bearer token, if scrapes must present one
    issuance: Tally = field(default_factory=lambda: Tally(3))  # outcome, reason, profile
    verify: Tally = field(default_factory=lambda: Tally(2))  # decision, reason
    limited: Tally = field(default_factory=lambda: Tally(1))  # scope
    alerts: Tally = field(default_factory=lambda: Tally(1))  # kind
    webhooks: Tally = field(default_factory=lambda: Tally(1))  # outcome
    connections: Tally = field(default_factory=lambda: Tally(1))  # why the server closed one (gateway.web.connections)
    caches: list[CacheStats] = field(default_factory=list)
    gauges: Gauges = field(default_factory=Gauges)
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.audit_commit = Histogram(
            "gateway_audit_commit_seconds", "Time to commit one audit group (one transaction, one fsync)",
            buckets=_COMMIT_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.audit_group = Histogram(
            "gateway_audit_group_records", "Records per audit group commit",
            buckets=_GROUP_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.revocation_propagation = Histogram(
            "gateway_revocation_propagation_seconds",
            "From a revocation's commit (key, principal, grant, links) to this process's view applying it",
            labelnames=("kind",), buckets=_PROPAGATION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_Exported(self))
        ProcessCollector(registry=self.registry)

    def profile_label(self, name: str | None) -> str:
        return name if name in self.profiles else OTHER

    def count_issuance(self, counted: Sequence[tuple[str, str, str | None]]) -> None:
        """Issuer's hook: one count per item, by outcome ("issued", "denied"), reason and profile (None: the
        default), from the issuer's outcomes rather than its records (a batch's URLs share one). Memory only."""
        for outcome, reason, profile in counted:
            self.issuance.add((outcome, reason, self.profile_label(profile or self.default)))

    def committed(self, records: list[AuditRecord], seconds: float) -> None:
        self.audit_commit.observe(seconds)
        self.audit_group.observe(len(records))

    def propagated(self, kind: str, seconds: float) -> None:
        """The state view applied a revocation committed ``seconds`` ago (by this process or another)."""
        self.revocation_propagation.labels(kind).observe(max(0.0, seconds))

    def verified(self, reason: str = "ok") -> None:
        self.verify.add(_ALLOWED if reason == "ok" else ("deny", reason))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Exported(Collector):
    """What is read at scrape time: tallies, cache counters, gauges."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # the families vary with what was counted; describing none keeps registration cheap

    def collect(self) -> Iterator[Metric]:
        m = self._m
        yield _counter("gateway_issuance", "Issuance outcomes per item", ("outcome", "reason", "profile"), m.issuance)
        yield _counter("gateway_verify", "Decisions at /v1/verify", ("decision", "reason"), m.verify)
        yield _counter("gateway_rate_limited", "Requests refused by an abuse limit", ("scope",), m.limited)
        yield _counter("gateway_alerts", "Suspicious-use alerts raised", ("kind",), m.alerts)
        yield _counter("gateway_webhook_deliveries", "Webhook delivery attempts", ("outcome",), m.webhooks)
        yield _counter("gateway_connections_closed", "Connections the server closed", ("reason",), m.connections)
        yield from _caches(m.caches)
        yield from _gauges(m.gauges)


def _counter(name: str, documentation: str, labels: tuple[str, ...], tally: Tally) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for key, value in sorted(tally.counts.items()):
        family.add_metric(list(key), value)
    return family


def _caches(caches: list[CacheStats]) -> Iterator[Metric]:
    requests = CounterMetricFamily("gateway_cache_requests", "Cache lookups", labels=["cache", "result"])
    ratio = GaugeMetricFamily("gateway_cache_hit_ratio", "Hits / lookups since start", labels=["cache"])
    for cache in caches:
        hits, misses = cache.read()
        requests.add_metric([cache.name, "hit"], hits)
        requests.add_metric([cache.name, "miss"], misses)
        ratio.add_metric([cache.name], hits / (hits + misses) if hits + misses else 0.0)
    yield requests
    yield ratio


def _gauges(g: Gauges) -> Iterator[Metric]:
    for name, documentation, value in (
        ("gateway_state_view_age_seconds", "Seconds since the state view was last proved current", g.state_age()),
        ("gateway_checkpoint_age_seconds", "Seconds since the newest signed checkpoint", g.checkpoint_age()),
        ("gateway_webhook_backlog", "Webhook deliveries waiting (pending or being retried)", g.webhook_backlog()),
        ("gateway_audit_pending_records", "Audit records waiting for the next group commit", g.audit_pending()),
        ("gateway_connections_open", "Client connections open in this process", g.connections_open()),
        ("gateway_connections_max", "The cap on open client connections (server.max_connections)", g.connections_max()),
        (
            "gateway_gc_frozen_objects",
            "Objects frozen after start-up, out of the collector's reach",
            g.frozen_objects(),
        ),
        (
            "gateway_audit_write_behind_waiting",
            "Raw-log and redemption entries waiting to be written (<= 1 s)",
            g.write_behind_waiting(),
        ),
    ):
        if value is not None:
            yield GaugeMetricFamily(name, documentation, value=value)
    dropped = CounterMetricFamily(
        "gateway_audit_write_behind_dropped", "Raw-log and redemption entries dropped: the write-behind queue was full",
        labels=["kind"],
    )  # fmt: skip
    for kind, count in sorted(g.write_behind_dropped().items()):
        dropped.add_metric([kind], count)
    yield dropped
    rates = g.key_rates()
    yield GaugeMetricFamily(
        "gateway_key_issuance_rate_max", "Issuances per minute of the busiest key (last full minute)",
        value=max(rates, default=0.0),
    )  # fmt: skip
    yield GaugeMetricFamily("gateway_keys_issuing", "Keys that issued in the last full minute", value=len(rates))
