"""CPU per issued URL in-process: the issuer with the durable audit log, 32 requests in flight (issue 18).

Run: .venv/bin/python -m benchmarks.bench_issue_cpu [--only single|batch] [--rounds N] [--new-urls]
     (pin it: taskset -c 0 ...)

``time.process_time`` covers the event loop and the audit writer thread, so a neighbour's load on a shared
machine inflates it far less than wall time. No checkpoint task runs here (``benchmarks.run`` has the
server); the state view is caught up between rounds, as the sync task would. Every call asks for the same
items, so within the cache window the signature memo answers; ``--new-urls`` gives each batch call its own ttl,
so its 100 URLs are new (each signed afresh, as ``benchmarks.run``'s batch-new).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.audit.records import RequestContext
from gateway.cli.main import main as gatewayctl
from gateway.config import load_config
from gateway.model import KeyAlgorithm, Permission, PrincipalKind, Rendition, Viewer, Visibility
from gateway.services import Services, open_services
from gateway.signing.issuance import SignItem

CTX = RequestContext(actor="bench", client_ip="203.0.113.7", user_agent="bench/1")
IN_FLIGHT = 32


async def _set_up(services: Services) -> None:
    now = time.time()
    permissions = frozenset({Permission.SIGN, Permission.SIGN_ON_BEHALF})
    await services.admin.add_principal(CTX, "web", PrincipalKind.SERVICE, permissions, None, now)
    await services.admin.create_key(CTX, "web", KeyAlgorithm.ED25519, now)
    for i in range(100):
        paths = {Rendition.VIDEO: f"/v/m{i}/a.m3u8"}
        await services.admin.put_media(CTX, f"m{i}", "alice", "w1", Visibility.WORKSPACE, paths, now)


async def _cpu_per_url(
    services: Services, call: Callable[[int], Awaitable[object]], calls: int, urls: int, rounds: int = 1
) -> float:
    for _ in range(1 + rounds):  # the first round warms caches and the subject's key; the last counts
        started = time.process_time()
        for start in range(0, calls, IN_FLIGHT):
            await services.state.catch_up()
            await asyncio.gather(*(call(n) for n in range(start, min(calls, start + IN_FLIGHT))))
        cpu = time.process_time() - started
    return cpu / (calls * urls) * 1e6


async def measure(data: Path, only: str | None = None, rounds: int = 1, new_urls: bool = False) -> dict[str, float]:
    services = await open_services(load_config(data, environ={}))
    try:
        await _set_up(services)
        principal = services.state.view.principals["web"]
        viewer = Viewer("alice", frozenset({"w1"}), source="asserted")

        async def single(n: int) -> object:
            return await services.issuer.issue(principal, viewer, [SignItem(f"m{n % 100}", Rendition.VIDEO)], CTX,
                                                time.time())  # fmt: skip

        ttls = itertools.count(60)

        async def batch(n: int) -> object:
            ttl = next(ttls) if new_urls else None
            items = [SignItem(f"m{i}", Rendition.VIDEO, ttl) for i in range(100)]
            return await services.issuer.issue(principal, viewer, items, CTX, time.time())

        found = {}
        if only in (None, "single"):
            found["POST /v1/sign path, one item"] = await _cpu_per_url(services, single, 1500, 1, rounds)
        if only in (None, "batch"):
            found["POST /v1/sign/batch path, 100 items"] = await _cpu_per_url(services, batch, 20, 100, rounds)
        return found
    finally:
        await services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["single", "batch"], help="that path alone (under py-spy, say)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds after the warm one; the last is printed")
    parser.add_argument("--new-urls", action="store_true", help="batch: every call's URLs new (its own ttl)")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="gw-issue-cpu-"))
    try:
        gatewayctl(["init", "--data-dir", str(data)])
        for name, us in asyncio.run(measure(data, args.only, args.rounds, args.new_urls)).items():
            print(f"{name:40} {us:8.1f} us CPU per issued URL")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
