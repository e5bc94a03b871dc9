"""CPU per ``GET /v1/verify`` in-process, for a prefix token already remembered (issue 18, ``verify-same``).

Run: .venv/bin/python -m benchmarks.bench_verify_cpu [--calls 20000] [--profile 25] [--distinct]
(pin it: taskset -c 0 ...)

The real services and app; requests made with aiohttp's ``make_mocked_request`` carrying
``X-Original-URI: /v/m1/seg{i}.ts?<prefix token>`` (1000 segments, cycled) from 127.0.0.1, a trusted proxy.
``--segments 100000``: every request a segment not seen before (a player's real pattern; 1000 segments
fit the native parser's memo). Two figures, in µs of ``time.process_time`` per call (CPU, so a neighbour's
load inflates it far less than wall time): the handler alone, and through ``request_middleware``. Building
the mocked requests is not counted.
``--distinct``: every request a URL never presented before, each signed for its own path (``benchmarks.run``'s
``verify-distinct``): an Ed25519 verification and a ``url:redeemed`` record each. The write-behind queue is
flushed after each batch inside the timed region (its writer thread's CPU is in ``process_time``), and
suspicious-use detection sees each committed group, as in ``serve``.
``--profile N`` prints cProfile's top N functions (by own time) of a run through the middleware.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from benchmarks import setup
from gateway.config import load_config
from gateway.services import freeze_start_up_heap, open_services
from gateway.web.app import create_app
from gateway.web.appkeys import SERVICES
from gateway.web.middleware import REQUEST_ID, request_middleware
from gateway.web.verify import verify

SEGMENTS = 1000
BATCH = 2000  # requests built ahead of each timed batch: each request is answered once, as on the wire


def _transport(port: int) -> mock.Mock:
    transport = mock.Mock()
    peer = ("127.0.0.1", port)
    transport.get_extra_info.side_effect = lambda name, default=None: peer if name == "peername" else default
    transport.is_closing.return_value = False
    return transport


def _requests(app: web.Application, uris: list[str], start: int, count: int) -> list[web.Request]:
    """``count`` requests, each a clone of one mocked request (``make_mocked_request`` itself costs ~1 ms)."""
    base = make_mocked_request("GET", "/v1/verify", app=app, transport=_transport(40000))
    return [base.clone(headers={"X-Original-URI": uris[(start + n) % len(uris)]}) for n in range(count)]


Call = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _alone(request: web.Request) -> web.StreamResponse:
    request[REQUEST_ID] = "bench"
    return await verify(request)


async def _through_middleware(request: web.Request) -> web.StreamResponse:
    return await request_middleware(request, verify)


async def _cpu_per_call(app: web.Application, uris: list[str], call: Call, calls: int, offset: int = 0) -> float:
    """CPU per call over ``calls`` requests for ``uris[offset:]`` (cycled); the write-behind queue is flushed
    after each batch, in the timed region (with the default 1000 segments, nothing waits: one record, warmed)."""
    services = app[SERVICES]
    spent = 0.0
    for start in range(0, calls, BATCH):
        batch = _requests(app, uris, offset + start, min(BATCH, calls - start))
        await services.state.catch_up()  # as the sync task would, between batches: the view stays current
        started = time.process_time()
        for request in batch:
            response = await call(request)
            assert response.status == 200, response.text  # type: ignore[attr-defined]
        await services.behind.flush()
        await services.watcher.step(services.clock())
        spent += time.process_time() - started
    return spent / calls * 1e6


async def measure(
    data: Path, fixture: setup.Fixture, calls: int, profile: int, segments: int, distinct: bool, sort: str
) -> None:
    services = await open_services(load_config(data, environ={}))
    try:
        app = create_app(services, close_services=False, checkpoints=False)
        services.watcher.watching = True  # as its task in serve would: detection sees each committed group
        if distinct:
            uris = fixture.distinct_file.read_text().split()
        else:
            uris = [f"/v/m1/seg{i}.ts?{fixture.prefix_token}" for i in range(segments)]
        # Warm: the decision, the caches, the redemption record (distinct: on URLs the runs never present).
        warm = min(segments, SEGMENTS)
        await _cpu_per_call(app, uris, _through_middleware, warm)
        freeze_start_up_heap()  # as serve does once serving: collections walk only what was made since
        offset = warm if distinct else 0
        for name, call in (("handler alone", _alone), ("through request_middleware", _through_middleware)):
            found = []
            for _ in range(3):
                found.append(await _cpu_per_call(app, uris, call, calls, offset))
                offset += calls if distinct else 0
            print(f"{name:28} {min(found):7.2f} µs/call (CPU, best of 3 x {calls})", flush=True)
        if profile:
            profiler = cProfile.Profile()
            step = BATCH // 4  # profiled, a batch takes longer: the view must not go stale (2 s) within one
            for start in range(0, calls, step):  # in batches: the view is caught up between them, as above
                batch = _requests(app, uris, offset + start, min(step, calls - start))
                await services.state.catch_up()
                profiler.enable()
                for request in batch:
                    response = await _through_middleware(request)
                    assert response.status == 200, response.text  # type: ignore[attr-defined]
                await services.behind.flush()
                await services.watcher.step(services.clock())
                profiler.disable()
            pstats.Stats(profiler).sort_stats(sort).print_stats(profile)
    finally:
        await services.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--segments", type=int, default=SEGMENTS, help="distinct segment URIs, cycled (default 1000)")
    parser.add_argument("--distinct", action="store_true", help="every URL new, each signed for its own path")
    parser.add_argument("--sort", default="tottime", help="the profile's order (pstats: tottime, cumulative)")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="gw-verify-cpu-"))
    # The distinct-URL file: a warm-up, 3 runs of each of two figures and a profiled run, none repeated.
    setup.DISTINCT_URLS = SEGMENTS + 7 * args.calls if args.distinct else 0
    try:
        setup.init(data)  # runs its own event loop: outside ours
        fixture = asyncio.run(setup.prepare(data))
        asyncio.run(measure(data, fixture, args.calls, args.profile, args.segments, args.distinct, args.sort))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
