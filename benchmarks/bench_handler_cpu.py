"""CPU per request of the whole HTTP path in-process: ``POST /v1/sign`` and ``GET /m/{id}/video`` (issue 18).

Run: taskset -c 0 .venv/bin/python -m benchmarks.bench_handler_cpu [--requests 6000] [--profile sign|page|batch]
     [--only sign|page|batch] [--cold-signatures] [--new-urls]

The real app (``create_app``, ``Runner``, durable SQLite audit, checkpoints on, as ``gatewayctl serve``) and an
aiohttp hello-world are served on loopback in this process; 32 keep-alive connections, each a plain asyncio
stream sending one fixed request and reading its answer, drive each in turn. ``time.process_time`` covers the
event loop, the audit writer thread and the client; the client's share and aiohttp's own are what the
hello-world row costs, so "sign - hello" is the gateway's own work per request (the token check, body
parsing, issuance, the audit record and its commit, the response). Unlike ``bench_issue_cpu`` this includes
JWT and body parsing and the middleware. ``batch`` is ``POST /v1/sign/batch`` with 100 items (4 requests for
every 100 of ``--requests``); "batch, per URL" is its CPU less one hello-world POST, over 100. ``--profile``
runs one path under cProfile and prints the top entries by own time (``SORT=cumulative``, ``TOP=60`` to change).
Every request asks for the same item, so within the cache window each signs the very message the first signed
and the signature memo (``gateway.keys.material.ed25519_sign``) answers it; ``--cold-signatures`` signs every
one afresh, as a URL not issued before in its window is. ``--new-urls`` (batch only) goes further, as
``benchmarks.run``'s batch-new does: each batch request's items carry a ttl no earlier request had, so every URL
is new (its signature, its digest in the child rows' index, its answer) and is signed afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import os
import pstats
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from benchmarks.hello import hello, hello_post
from benchmarks.setup import SIGN_BODY, principal_and_viewer
from gateway.cli.main import main as gatewayctl
from gateway.config import load_config
from gateway.keys import material
from gateway.services import freeze_start_up_heap, open_services
from gateway.web.app import create_app
from gateway.web.server import Runner

CONNECTIONS = 32
BATCH = 100  # items per POST /v1/sign/batch


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


Request = bytes | Callable[[], bytes]  # a fixed request, or one made anew for each send


async def _connection(
    port: int, request: Request, count: int, statuses: dict[int, int], latencies: list[float] | None = None
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request if isinstance(request, bytes) else request())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _cpu_per_request(
    port: int, request: Request, requests: int, profile: cProfile.Profile | None
) -> tuple[float, float]:
    """(all threads, other threads than the event loop's: the audit writer) in µs per request."""
    statuses: dict[int, int] = {}
    per = requests // CONNECTIONS
    await asyncio.gather(*(_connection(port, request, per // 4, statuses) for _ in range(CONNECTIONS)))  # warm
    statuses.clear()
    started, main_started = time.process_time(), time.thread_time()
    if profile:
        profile.enable()
    latencies: list[float] = []
    await asyncio.gather(*(_connection(port, request, per, statuses, latencies) for _ in range(CONNECTIONS)))
    if profile:
        profile.disable()
    cpu, main = time.process_time() - started, time.thread_time() - main_started
    assert set(statuses) <= {200, 302}, statuses
    done = per * CONNECTIONS
    latencies.sort()
    p50, p99, top = (latencies[int(len(latencies) * q)] * 1e3 for q in (0.5, 0.99, 1 - 1e-9))
    print(f"  wall per request (client included): p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms")
    return cpu / done * 1e6, (cpu - main) / done * 1e6


async def _serve(app: web.Application, runner: web.AppRunner) -> tuple[int, Callable[[], Awaitable[None]]]:
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return sock.getsockname()[1], runner.cleanup


def _new_batches(headers: dict[str, str]) -> Callable[[], bytes]:
    """Batch requests whose URLs no earlier one had: the items' ttl differs from call to call."""
    counter = itertools.count(60)

    def make() -> bytes:
        ttl = next(counter)
        items = [{"media_id": f"m{i}", "rendition": "video", "ttl": ttl} for i in range(BATCH)]
        body = json.dumps({"items": items, "viewer": {"id": "alice", "workspaces": ["w1"]}}, separators=(",", ":"))
        return _request("POST", "/v1/sign/batch", headers, body.encode())

    return make


async def measure(
    data: Path, requests: int, profiled: str | None, only: str | None = None, new_urls: bool = False
) -> dict[str, tuple[float, float]]:
    hello_app = web.Application()
    hello_app.router.add_get("/", hello)
    hello_app.router.add_post("/", hello_post)
    hello_port, stop_hello = await _serve(hello_app, web.AppRunner(hello_app, access_log=None))
    services = await open_services(load_config(data, environ={}))
    token, viewer = await principal_and_viewer(services, time.time())
    app = create_app(services)
    port, stop = await _serve(app, Runner(app, access_log=None))
    if os.environ.get("NO_FREEZE") != "1":
        freeze_start_up_heap()  # as gatewayctl serve does
    json_headers = {"Content-Type": "application/json"}
    sign_body = SIGN_BODY.encode()
    items = [{"media_id": f"m{i}", "rendition": "video"} for i in range(BATCH)]  # as benchmarks.run's batch step
    batch_body = json.dumps({"items": items, "viewer": {"id": "alice", "workspaces": ["w1"]}}).encode()
    batch_headers = {"Authorization": f"Bearer {token}", **json_headers}
    batch: Request = (
        _new_batches(batch_headers) if new_urls else _request("POST", "/v1/sign/batch", batch_headers, batch_body)
    )
    paths: dict[str, tuple[int, Request]] = {
        "hello GET": (hello_port, _request("GET", "/", {})),
        "hello POST": (hello_port, _request("POST", "/", json_headers, sign_body)),
        "sign": (port, _request("POST", "/v1/sign", {"Authorization": f"Bearer {token}", **json_headers}, sign_body)),
        "page": (port, _request("GET", "/m/m1/video", {"Authorization": f"Bearer {viewer}"})),
        "batch": (port, batch),
    }
    profile = cProfile.Profile(time.thread_time) if profiled else None  # CPU, not wall time: threads
    try:
        results = {}
        for name, (at, request) in paths.items():
            if only and name != only:
                continue
            count = requests // BATCH * 4 if name == "batch" else requests  # a batch costs ~25 single signs
            results[name] = await _cpu_per_request(at, request, count, profile if name == profiled else None)
        if profile:
            stats = pstats.Stats(profile).sort_stats(os.environ.get("SORT", "tottime"))
            stats.print_stats(int(os.environ.get("TOP", "30")))
        return results
    finally:
        await stop()
        await stop_hello()


def _signed_afresh(seed: bytes, message: bytes) -> bytes:
    return material.ed25519_private(seed).sign(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=6400)
    parser.add_argument("--profile", choices=["sign", "page", "batch"])
    parser.add_argument("--only", choices=["sign", "page", "batch"], help="that path alone (under py-spy, say)")
    parser.add_argument("--cold-signatures", action="store_true", help="no signature memo: every URL signed afresh")
    parser.add_argument("--new-urls", action="store_true", help="batch: every URL new (ttl differs per request)")
    args = parser.parse_args()
    # Each connection sends requests // CONNECTIONS (a batch path a 25th of that): fewer would measure nothing.
    least = CONNECTIONS * (BATCH // 4 if args.only in (None, "batch") else 1)
    if args.requests < least:
        parser.error(f"--requests must be at least {least} here ({CONNECTIONS} connections, each sending some)")
    if args.cold_signatures:
        material.ed25519_sign = _signed_afresh
    data = Path(tempfile.mkdtemp(prefix="gw-handler-cpu-"))
    try:
        gatewayctl(["init", "--data-dir", str(data)])
        results = asyncio.run(measure(data, args.requests, args.profile, args.only, args.new_urls))
        for name, (us, writer) in results.items():
            print(f"{name:12} {us:7.1f} us CPU per request ({writer:5.1f} us in other threads)")
        if not args.only:
            print(f"sign - hello POST {results['sign'][0] - results['hello POST'][0]:7.1f} us")
            print(f"page - hello GET  {results['page'][0] - results['hello GET'][0]:7.1f} us")
            print(f"batch, per URL    {(results['batch'][0] - results['hello POST'][0]) / BATCH:7.1f} us")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
