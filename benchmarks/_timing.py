"""Timing helpers: best-of-N rates, so noise on a shared machine shows as spread, not as bias."""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(fn: Callable[[], object], *, seconds: float = 0.3, repeats: int = 5) -> float:
    """Calls per second of ``fn``: the best of ``repeats`` runs of about ``seconds`` each."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 10:
            break
        calls *= 2
    per_run = max(1, int(calls * seconds / max(elapsed, 1e-9)))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_run):
            fn()
        best = max(best, per_run / (time.perf_counter() - start))
    return best
