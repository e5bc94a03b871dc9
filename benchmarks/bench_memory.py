"""Resident memory of one serving process with a large store (issue 10: <= 150 MB).

Fills a fresh SQLite database with 100 000 keys (10 000 revoked) for 20 000
principals (each with a credential) and 1 000 000 media items, by SQL in bulk
(the administrative API would audit each one; the state view does not care how
rows arrived), starts ``gatewayctl serve``, asks for the page URL of 25 000 distinct items
(more than the media cache holds: its worst case), and reads VmRSS and VmHWM
from /proc.

Run: .venv/bin/python -m benchmarks.bench_memory [--keys 100000] [--media 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from benchmarks.run import PY, free_port, process, wait_http
from benchmarks.setup import init
from gateway.access import tokens
from gateway.config import load_config

_TARGET_MB = 150


def fill(db: Path, keys: int, revoked: int, principals: int, media: int) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO principals (id, kind, permissions, renditions, created_at) "
        "VALUES (?, 'service', '[\"sign\"]', NULL, ?)",
        ((f"p{i}", now) for i in range(principals)),
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO credentials (id, principal_id, public_key, created_at) VALUES (?, ?, ?, ?)",
        ((f"gwc_bench{i:016d}", f"p{i}", secrets.token_bytes(32), now) for i in range(principals)),
    )
    conn.executemany(
        "INSERT INTO keys (kid, principal_id, algorithm, public_key, sealed_private, created_at, revoked_at) "
        "VALUES (?, ?, 'ed25519', ?, ?, ?, ?)",
        ((f"gwk_bench{i:016d}", f"p{i % principals}", secrets.token_bytes(32), secrets.token_bytes(61), now + i * 1e-6,
          now if i < revoked else None) for i in range(keys)),
    )  # fmt: skip
    batch = 100_000
    for start in range(0, media, batch):
        conn.executemany(
            "INSERT INTO media (id, owner, workspace, visibility, paths, prefixes, updated_at) "
            "VALUES (?, ?, 'w1', 'workspace', ?, ?, ?)",
            ((f"bench{i}", f"user{i % 50_000}",
              json.dumps({"video": f"/v/bench{i}/master.m3u8", "thumbnail": f"/t/bench{i}.jpg"}),
              json.dumps({"video": f"/v/bench{i}/"}), now) for i in range(start, min(media, start + batch))),
        )  # fmt: skip
    conn.execute("COMMIT")
    conn.close()


def _viewer(data: Path) -> str:
    config = load_config(data, environ={})
    idp = load_pem_private_key(config.dev_idp_key_path.read_bytes(), None)
    assert isinstance(idp, Ed25519PrivateKey)
    return tokens.mint_viewer_token(
        private_key=idp, issuer=config.viewer.issuer, audience=config.viewer.audience, subject="viewer",
        workspaces=["w1"], workspaces_claim=config.viewer.workspaces_claim, now=time.time(), ttl=3600,
    )  # fmt: skip


async def _fill_media_cache(base: str, viewer: str, items: int) -> None:
    """Page redirects for ``items`` distinct items: each is read from the store once and cached (the worst case)."""
    headers = {"Authorization": f"Bearer {viewer}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:

        async def one(i: int) -> None:
            async with session.get(f"{base}/m/bench{i}/video", headers=headers, allow_redirects=False) as response:
                assert response.status == 302, (response.status, await response.text())

        for start in range(0, items, 1000):
            await asyncio.gather(*(one(i) for i in range(start, min(items, start + 1000))))


def status_kb(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--revoked", type=int, default=10_000)
    parser.add_argument("--principals", type=int, default=20_000)
    parser.add_argument("--media", type=int, default=1_000_000)
    parser.add_argument("--cached", type=int, default=25_000, help="distinct items requested (fills the cache)")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="gw-memory-"))
    try:
        init(data)
        started = time.monotonic()
        fill(data / "gateway.db", args.keys, args.revoked, args.principals, args.media)
        print(f"filled: {args.keys} keys ({args.revoked} revoked), {args.principals} principals, "
              f"{args.media} media items in {time.monotonic() - started:.0f} s")  # fmt: skip
        port = free_port()
        with process([PY, "-m", "gateway.cli.main", "serve", "--data-dir", str(data), "--port", str(port)]) as proc:
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120)
            loaded = status_kb(proc.pid)
            asyncio.run(_fill_media_cache(f"http://127.0.0.1:{port}", _viewer(data), args.cached))
            warm = status_kb(proc.pid)
        rss_mb, peak_mb = warm["VmRSS"] / 1024, warm["VmHWM"] / 1024
        verdict = "PASS" if peak_mb <= _TARGET_MB else "FAIL"
        print(f"RSS after loading the view: {loaded['VmRSS'] / 1024:.0f} MB; after warm-up: {rss_mb:.0f} MB "
              f"(peak {peak_mb:.0f} MB); target <= {_TARGET_MB} MB: {verdict}")  # fmt: skip
        return 0 if peak_mb <= _TARGET_MB else 1
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
