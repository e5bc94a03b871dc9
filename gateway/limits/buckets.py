"""Token buckets that many replicas share through the store, with no round trip per request.

Pure: no I/O, time is an argument. Each process keeps a local ``Bucket`` per
limited thing (a principal, a key, a client network) and takes tokens from it
on the request path. Every ``limits.sync_every`` seconds the process reports
what it took since the last report (``drain``) and the store, in one
statement, refills the shared level at the bucket's rate (capped at its
burst), subtracts every replica's use and answers the new level, which the
process adopts less whatever it took meanwhile (``adopt``).

Between two reconciliations a replica also refills locally, and every replica
may spend the level it last saw. So with N replicas, in any window the
buckets together admit at most the single-bucket allowance plus
(N - 1) x (burst + rate x sync_every); the shared level then goes negative by
the excess, and every replica refuses until refill has paid it back, so over
a long window the rate is exact. With one process the bound is exact too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.rate > 0


@dataclass
class Bucket:
    rule: Rule
    level: float
    at: float
    used: float = 0.0  # taken since the last report
    reporting: float = 0.0  # reported, answer not yet adopted

    @classmethod
    def full(cls, rule: Rule, now: float) -> Bucket:
        return cls(rule, float(rule.burst), now)

    def take(self, cost: float, now: float) -> float:
        """Take ``cost`` tokens: 0.0 if granted, else the seconds until they would be there."""
        if now > self.at:
            self.level = min(float(self.rule.burst), self.level + self.rule.rate * (now - self.at))
            self.at = now
        if self.level >= cost:
            self.level -= cost
            self.used += cost
            return 0.0
        return (cost - self.level) / self.rule.rate

    def drain(self) -> float:
        """What to report: the use since the last report (kept until ``adopt`` or ``restore``)."""
        self.reporting, self.used = self.used, 0.0
        return self.reporting

    def adopt(self, shared_level: float, at: float) -> None:
        """The store's level after our report; what was taken since the report comes off it."""
        self.level = min(float(self.rule.burst), shared_level) - self.used
        self.at = max(self.at, at)
        self.reporting = 0.0

    def restore(self) -> None:
        """The report failed: count that use again next time."""
        self.used += self.reporting
        self.reporting = 0.0

    def idle(self, now: float) -> bool:
        """Full again with nothing to report: it can be forgotten (a fresh bucket is the same)."""
        refilled = self.level + self.rule.rate * max(0.0, now - self.at)
        return self.used == 0 and self.reporting == 0 and refilled >= self.rule.burst


def retry_after(seconds: float) -> int:
    """Retry-After is whole seconds, at least 1."""
    return max(1, math.ceil(seconds))
