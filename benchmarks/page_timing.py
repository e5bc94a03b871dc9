"""Can an outsider tell which page ids exist by timing the 404s? (issue 17, item 7)

Every page answer for an item the viewer may not see and for an id that does
not exist is the same 404. Before the media cache remembered misses, a missing
id cost a database read the private item (cached) did not, and interleaved
rounds classified every id correctly on PostgreSQL. This runs that attack
against a live ``gatewayctl serve`` and reports the classifier's accuracy
(≈ 50 %: a coin toss; 100 %: existence leaks).

The attack: ``--ids`` private items (another workspace's) and as many ids that
do not exist; ``--rounds`` rounds, each requesting every id once in a fresh
random order over one keep-alive connection, as a viewer of another workspace.
Two classifiers, both told the direction the finding measured (a miss is
slower): by id, the half with the higher median time is called missing; by
request, each request slower than the median of all is called missing.

Run: .venv/bin/python -m benchmarks.page_timing [--store sqlite|postgres|both] [--rounds 150] [--ids 20]
     [--server postgresql://postgres@127.0.0.1:5432/test]
``--source DIR`` runs the gateway from another source tree (an older commit, to see the leak it had).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.run import free_port
from tests import postgres

PY = sys.executable


@dataclass(frozen=True)
class Result:
    store: str
    by_id: float
    by_request: float
    private_us: float
    missing_us: float
    requests: int


def _ctl(data: Path, env: dict[str, str], source: Path, *argv: str) -> dict:
    done = subprocess.run([PY, "-m", "gateway.cli.main", *argv, "--data-dir", str(data), "--json"], cwd=source,
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"gatewayctl {' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def _prepare(data: Path, env: dict[str, str], source: Path, ids: int) -> tuple[list[str], list[str], str]:
    """``ids`` private items of workspace 'secret' and ``ids`` ids nobody created; a viewer of workspace 'other'."""
    subprocess.run([PY, "-m", "gateway.cli.main", "init", "--data-dir", str(data)], cwd=source, env=env,
                   check=True, capture_output=True)  # fmt: skip
    private = [f"p{secrets.token_hex(4)}" for _ in range(ids)]
    missing = [f"p{secrets.token_hex(4)}" for _ in range(ids)]
    for media_id in private:
        _ctl(data, env, source, "media", "put", media_id, "--owner", "alice", "--workspace", "secret",
             "--visibility", "private", "--video", f"/v/{media_id}/master.m3u8")  # fmt: skip
    viewer = _ctl(data, env, source, "token", "--viewer", "mallory", "--workspace", "other")["token"]
    return private, missing, viewer


@contextmanager
def _serving(data: Path, env: dict[str, str], source: Path) -> Iterator[int]:
    port = free_port()
    log = (data.parent / "serve.log").open("w")
    proc = subprocess.Popen([PY, "-m", "gateway.cli.main", "serve", "--data-dir", str(data), "--port", str(port)],
                            cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"gatewayctl serve did not become ready: {(data.parent / 'serve.log').read_text()}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def _attack(port: int, ids: list[str], viewer: str, rounds: int) -> dict[str, list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {viewer}"}
    times: dict[str, list[float]] = {media_id: [] for media_id in ids}
    order = list(ids)
    for _ in range(rounds):
        random.shuffle(order)
        for media_id in order:
            started = time.perf_counter()
            conn.request("GET", f"/m/{media_id}/video", headers=headers)
            response = conn.getresponse()
            response.read()
            times[media_id].append(time.perf_counter() - started)
            if response.status != 404:
                raise SystemExit(f"/m/{media_id}/video answered {response.status}, not 404")
    conn.close()
    return times


def _classify(store: str, times: dict[str, list[float]], private: list[str], missing: list[str]) -> Result:
    medians = {media_id: statistics.median(values) for media_id, values in times.items()}
    slowest = set(sorted(medians, key=medians.__getitem__, reverse=True)[: len(missing)])
    by_id = sum((media_id in slowest) == (media_id in missing) for media_id in medians) / len(medians)
    every = [(t, media_id in missing) for media_id, values in times.items() for t in values]
    cut = statistics.median(t for t, _ in every)
    by_request = sum((t > cut) == is_missing for t, is_missing in every) / len(every)

    def typical(group: list[str]) -> float:
        return statistics.median(t for media_id in group for t in times[media_id]) * 1e6

    return Result(store, by_id, by_request, typical(private), typical(missing), len(every))


def _run(store: str, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="page-timing-") as tmp:
        data = Path(tmp) / "gw"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        database = None
        if store == "postgres":
            os.environ["GATEWAY_TEST_POSTGRES"] = args.server
            postgres.SERVER = args.server
            database = postgres.create_database()
            if database is None:
                raise SystemExit(f"no PostgreSQL at {args.server}")
            env["GATEWAY_DATABASE_URL"] = database
        try:
            private, missing, viewer = _prepare(data, env, args.source, args.ids)
            with _serving(data, env, args.source) as port:
                times = _attack(port, private + missing, viewer, args.rounds)
        finally:
            if database is not None:
                postgres.drop_database(database)
    return _classify(store, times, private, missing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--ids", type=int, default=20, help="private items, and as many missing ids")
    parser.add_argument("--server", default=postgres.SERVER, help="the PostgreSQL server to create a database on")
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="the gateway source tree to serve from")
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    print("| store | requests | private (median) | missing (median) | by id | by request |")
    print("|---|---:|---:|---:|---:|---:|")
    for store in stores:
        r = _run(store, args)
        print(f"| {r.store} | {r.requests} | {r.private_us:.0f} µs | {r.missing_us:.0f} µs "
              f"| {r.by_id:.0%} | {r.by_request:.1%} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
