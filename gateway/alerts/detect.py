"""Suspicious use, decided as it happens: pure rules over what the audit log records anyway.

Three signals, each pure (time is an argument):

- **Outsider use** (``outsider``): a redemption from a network that no
  issuance of the same token (key id and expiry) was made for: the rule
  ``gatewayctl incident report`` applies after the fact
  (``gateway.audit.forensics.build_report``).
- **Unusual use** (``Baselines``): a principal of a watched kind signing from
  a network it has not signed from, or at a UTC hour it has not signed at,
  once its baseline has been learning for ``alerts.learning_days``.
- **Rate spike** (``KeyRates``): a key's issuances in the last full minute
  above ``alerts.rate_factor`` times its average per minute (an exponentially
  weighted mean over about an hour) and above ``alerts.rate_floor``, once it
  has an hour of history. Each replica sees its share of a key's traffic and
  compares it with its own share of the baseline, so the ratio holds with
  many replicas; the floor applies per replica.

``Cooldown`` keeps one alert per (kind, subject) per ``alerts.cooldown``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.store.base import Baseline

_MINUTE = 60.0
_EWMA = 1 - math.exp(-1 / 60)  # weight of each new minute: a mean over about an hour
_WARM_MINUTES = 60


def outsider(network: str, issued_to: Iterable[str]) -> bool:
    return network not in set(issued_to)


class IssuedIndex:
    """(kid, expires_at) -> masked networks issued to, kept until the URLs expire."""

    def __init__(self) -> None:
        self._networks: dict[tuple[str, int], set[str]] = {}

    def add(self, kid: str, expires_at: int, network: str) -> bool:
        """True if new."""
        found = self._networks.setdefault((kid, expires_at), set())
        if network in found:
            return False
        found.add(network)
        return True

    def networks(self, kid: str, expires_at: int) -> set[str]:
        return self._networks.get((kid, expires_at), set())

    def expire(self, now: float) -> None:
        for token in [t for t in self._networks if t[1] < now]:
            del self._networks[token]

    def __len__(self) -> int:
        return len(self._networks)


@dataclass
class Baselines:
    """Each principal's usual networks and hours: stored ones plus what this replica saw since its last flush."""

    learning_seconds: float
    known: dict[str, Baseline] = field(default_factory=dict)
    seen: dict[str, Baseline] = field(default_factory=dict)

    def unusual(self, principal_id: str, network: str | None, now: float) -> list[str]:
        """Why this signing is unusual for the principal (empty: it is not), then learn it."""
        hour = int(now // 3600) % 24
        base = self.known.get(principal_id)
        reasons: list[str] = []
        if base is not None and now - base.first_seen >= self.learning_seconds:
            if network is not None and network not in base.networks:
                reasons.append("new-network")
            if not base.hours >> hour & 1:
                reasons.append("unusual-hour")
        self._learn(principal_id, network, hour, now)
        return reasons

    def _learn(self, principal_id: str, network: str | None, hour: int, now: float) -> None:
        networks = {network: now} if network else {}
        for table in (self.known, self.seen):
            old = table.get(principal_id)
            if old is None:
                table[principal_id] = Baseline(principal_id, networks, 1 << hour, now, 1)
            else:
                table[principal_id] = Baseline(
                    principal_id, {**old.networks, **networks}, old.hours | 1 << hour, old.first_seen, old.issuances + 1
                )

    def take_seen(self) -> list[Baseline]:
        seen, self.seen = list(self.seen.values()), {}
        return seen

    def adopt(self, stored: Iterable[Baseline]) -> None:
        """Baselines as the store has them (every replica's learning), plus what was seen since."""
        for base in stored:
            pending = self.seen.get(base.principal_id)
            self.known[base.principal_id] = base if pending is None else _union(base, pending)


def _union(a: Baseline, b: Baseline) -> Baseline:
    return Baseline(a.principal_id, {**a.networks, **b.networks}, a.hours | b.hours,
                    min(a.first_seen, b.first_seen), a.issuances + b.issuances)  # fmt: skip


@dataclass
class _Rate:
    minute: int
    count: int = 0
    mean: float = 0.0
    minutes: int = 0
    last: int = 0  # the last full minute's count


@dataclass(frozen=True)
class Spike:
    kid: str
    per_minute: int
    baseline: float


class KeyRates:
    """Issuances per key per minute and their running mean."""

    def __init__(self, factor: float, floor: int) -> None:
        self._factor = factor
        self._floor = floor
        self._keys: dict[str, _Rate] = {}

    def add(self, kid: str, now: float) -> Spike | None:
        """Count one issuance; a spike is reported when the minute it completes was one."""
        minute = int(now // _MINUTE)
        rate = self._keys.get(kid)
        if rate is None:
            rate = self._keys[kid] = _Rate(minute)
        spike = self._roll(kid, rate, minute) if minute != rate.minute else None
        rate.count += 1
        return spike

    def _roll(self, kid: str, rate: _Rate, minute: int) -> Spike | None:
        """Close the minute(s) since ``rate.minute``: the finished one, then any idle ones, into the mean."""
        finished, baseline, warm = rate.count, rate.mean, rate.minutes >= _WARM_MINUTES
        for count in [finished] + [0] * min(minute - rate.minute - 1, 10 * _WARM_MINUTES):
            rate.mean += _EWMA * (count - rate.mean)
            rate.minutes += 1
        rate.minute, rate.count, rate.last = minute, 0, finished
        if warm and finished >= self._floor and finished > self._factor * baseline:
            return Spike(kid, finished, baseline)
        return None

    def rates(self, now: float) -> list[float]:
        """Issuances in the last full minute, per key that had any (for the metrics)."""
        minute = int(now // _MINUTE)
        found = []
        for rate in self._keys.values():
            last = rate.count if rate.minute == minute - 1 else rate.last if rate.minute == minute else 0
            if last:
                found.append(float(last))
        return found

    def forget_idle(self, now: float) -> None:
        minute = int(now // _MINUTE)
        for kid in [k for k, r in self._keys.items() if minute - r.minute > 24 * 60]:
            del self._keys[kid]


class Cooldown:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._last: dict[tuple[str, str], float] = {}

    def ready(self, kind: str, subject: str, now: float) -> bool:
        """Whether an alert of ``kind`` about ``subject`` may be raised now (and if so, start its cooldown)."""
        last = self._last.get((kind, subject))
        if last is not None and now - last < self._seconds:
            return False
        self._last[(kind, subject)] = now
        return True

    def forget(self, now: float) -> None:
        for key in [k for k, at in self._last.items() if now - at >= self._seconds]:
            del self._last[key]


def hour_mask(hours: Iterable[int]) -> int:
    mask = 0
    for hour in hours:
        mask |= 1 << hour
    return mask


def usual_hours(mask: int) -> list[int]:
    return [h for h in range(24) if mask >> h & 1]


def networks_of(base: Baseline | None) -> Mapping[str, float]:
    return {} if base is None else base.networks
