"""``audit verify`` on large logs: speed, and memory that does not grow with the log.

Builds logs of N records (through the real append path) and verifies each,
reporting records/s and the peak memory Python allocated during the walk
(tracemalloc). Bounded memory means the peak stays flat as N grows.
Run: .venv/bin/python -m benchmarks.bench_audit_verify [--sizes 50000 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from pathlib import Path

from gateway.audit.checkpoints import LogSigner
from gateway.audit.records import VIEWER, AuditEvent, AuditRecord
from gateway.audit.verify import verify_log
from gateway.store.sqlite import SqliteStore


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        time=1_800_000_000 + i, event=AuditEvent.URL_ISSUED, actor="web", request_id=f"r{i}", kid="gwk_bench",
        media_id=f"m{i % 997}", rendition="video", subject=f"sub_{i % 5000:032x}", url_sha256="ab" * 32,
        expires_at=1_800_000_300 + i, decision="allow", reason="owner", retention=VIEWER, personal=b"x" * 90,
        detail={"issuance_id": f"gwi_{i:024x}", "profile": "native", "dialect": "native"},
    )  # fmt: skip


async def _build(path: Path, size: int, signer: LogSigner) -> SqliteStore:
    store = await SqliteStore.open(path)
    for start in range(0, size, 2000):
        await store.append_audit_group([_record(i) for i in range(start, min(size, start + 2000))], [], [], 0.0)
    frontier = await store.audit.frontier()
    async with store.transaction() as tx:
        await tx.audit.add_checkpoint(signer.sign(frontier.size, frontier.root(), time.time()))
    return store


async def main(sizes: list[int]) -> None:
    print(f"{'records':>9} {'verify s':>9} {'records/s':>10} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        LogSigner.create(Path(tmp) / "log.key")
        signer = LogSigner.load(Path(tmp) / "log.key")
        for size in sizes:
            store = await _build(Path(tmp) / f"log-{size}.db", size, signer)
            tracemalloc.start()
            start = time.perf_counter()
            report = await verify_log(store, {signer.key_id: signer.public}, now=time.time())
            elapsed = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert report.ok and report.records == size, report.problem
            await store.close()
            print(f"{size:9d} {elapsed:9.2f} {size / elapsed:10.0f} {peak / 2**20:9.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    asyncio.run(main(parser.parse_args().sizes))
