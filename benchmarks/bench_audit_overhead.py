"""Issuance throughput with the durable, Merkle-chained audit log vs. a null audit sink.

Target (issue 4): durable+chained >= 85 % of the null sink, measured in the same
run. Both variants do the same work (authentication aside: the issuer is
called directly), the same database reads and the same signing; only the audit
sink differs. Concurrency matters: the real sink group-commits every request
waiting while a commit is in flight, so one fsync serves many issuances.

Run: .venv/bin/python -m benchmarks.bench_audit_overhead [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.audit.log import Pending
from gateway.audit.records import RequestContext
from gateway.cli.main import main as gatewayctl
from gateway.config import load_config
from gateway.model import KeyAlgorithm, Permission, PrincipalKind, Rendition, Viewer, Visibility
from gateway.services import Services, open_services
from gateway.signing.issuance import Issuer, SignItem

CTX = RequestContext(actor="bench", request_id="bench", client_ip="198.51.100.7", user_agent="bench/1")


class NullBatcher:
    """Benchmark only: accepts records and writes nothing (the floor the real log is compared to)."""

    async def submit(self, batch: Pending) -> list[int]:
        return [0] * len(batch.records)


async def _setup(data_dir: Path) -> Services:
    services = await open_services(load_config(data_dir, environ={}))
    permissions = frozenset({Permission.SIGN, Permission.SIGN_ON_BEHALF})
    await services.admin.add_principal(CTX, "web", PrincipalKind.SERVICE, permissions, None, time.time())
    await services.admin.create_key(CTX, "web", KeyAlgorithm.ED25519, time.time())
    for i in range(50):
        paths = {Rendition.THUMBNAIL: f"/t/m{i}.jpg"}
        await services.admin.put_media(CTX, f"m{i}", f"user{i}", "w1", Visibility.PRIVATE, paths, time.time())
    return services


async def _run(issuer: Issuer, services: Services, requests: int, concurrency: int) -> float:
    principal = await services.store.principals.get("web")
    assert principal is not None
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            viewer = Viewer(f"user{i % 50}", source="asserted")
            [outcome] = await issuer.issue(
                principal, viewer, [SignItem(f"m{i % 50}", Rendition.THUMBNAIL)], CTX, time.time()
            )
            assert outcome.issued is not None

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return requests / (time.perf_counter() - start)


async def paired_rounds(run: Callable[[str], Awaitable[float]], rounds: int) -> list[tuple[float, float]]:
    """(null, durable) rates per round; halves alternate order so a noisy neighbour hits both alike."""
    pairs = []
    for round_no in range(rounds):
        order = ("null", "durable") if round_no % 2 == 0 else ("durable", "null")
        rates = {name: await run(name) for name in order}
        pairs.append((rates["null"], rates["durable"]))
    return pairs


def print_summary(header: str, pairs: list[tuple[float, float]]) -> None:
    ratios = [durable / null for null, durable in pairs]
    print(header)
    print(f"null audit sink          {statistics.median(p[0] for p in pairs):9.0f} issuances/s (median)")
    print(f"durable chained audit    {statistics.median(p[1] for p in pairs):9.0f} issuances/s (median)")
    print(f"ratio per round          {' '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio                    {statistics.median(ratios):9.2f}   median of paired rounds (target >= 0.85)")


async def main(requests: int, concurrency: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await asyncio.to_thread(gatewayctl, ["init", "--data-dir", tmp])
        services = await _setup(Path(tmp))
        real = services.issuer
        null = Issuer(services.store, services.keyring, services.profiles,
                      real._policy, services.audit_log, NullBatcher())  # type: ignore[arg-type]  # fmt: skip
        await _run(real, services, 200, concurrency)  # warm caches (subject keys, unsealed signing key)
        issuers = {"null": null, "durable": real}
        pairs = await paired_rounds(lambda name: _run(issuers[name], services, requests, concurrency), rounds)
        size = (await services.store.audit.frontier()).size
        await services.close()
    print_summary(f"requests={requests} concurrency={concurrency} rounds={rounds} (log now {size} records)", pairs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.rounds))
