"""CPU per ``GET /v1/verify`` in-process, for a prefix token already remembered (issue 18, ``verify-same``).

Run: .venv/bin/python -m benchmarks.bench_verify_cpu [--calls 20000] [--profile 25]   (pin it: taskset -c 0 ...)

The real services and app; requests made with aiohttp's ``make_mocked_request`` carrying
``X-Original-URI: /v/m1/seg{i}.ts?<prefix token>`` (1000 segments, cycled) from 127.0.0.1, a trusted proxy.
``--segments 100000``: every request a segment not seen before (a player's real pattern; 1000 segments
fit the native parser's memo). Two figures, in µs of ``time.process_time`` per call (CPU, so a neighbour's
load inflates it far less than wall time): the handler alone, and through ``request_middleware``. Building
the mocked requests is not counted.
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
from gateway.services import open_services
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


async def _cpu_per_call(app: web.Application, uris: list[str], call: Call, calls: int) -> float:
    spent = 0.0
    for start in range(0, calls, BATCH):
        batch = _requests(app, uris, start, min(BATCH, calls - start))
        await app[SERVICES].state.catch_up()  # as the sync task would, between batches: the view stays current
        started = time.process_time()
        for request in batch:
            response = await call(request)
            assert response.status == 200, response.text  # type: ignore[attr-defined]
        spent += time.process_time() - started
    return spent / calls * 1e6


async def measure(data: Path, prefix_token: str, calls: int, profile: int, segments: int) -> None:
    services = await open_services(load_config(data, environ={}))
    try:
        app = create_app(services, close_services=False, checkpoints=False)
        uris = [f"/v/m1/seg{i}.ts?{prefix_token}" for i in range(segments)]
        # Warm: the decision, the caches, the redemption record.
        await _cpu_per_call(app, uris, _through_middleware, min(segments, SEGMENTS))
        for name, call in (("handler alone", _alone), ("through request_middleware", _through_middleware)):
            best = min([await _cpu_per_call(app, uris, call, calls) for _ in range(3)])
            print(f"{name:28} {best:7.2f} µs/call (CPU, best of 3 x {calls})", flush=True)
        if profile:
            profiler = cProfile.Profile()
            for start in range(0, calls, BATCH):  # in batches: the view is caught up between them, as above
                batch = _requests(app, uris, start, min(BATCH, calls - start))
                await services.state.catch_up()
                profiler.enable()
                for request in batch:
                    response = await _through_middleware(request)
                    assert response.status == 200
                profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(profile)
    finally:
        await services.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--segments", type=int, default=SEGMENTS, help="distinct segment URIs, cycled (default 1000)")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="gw-verify-cpu-"))
    setup.DISTINCT_URLS = 0  # the distinct-URL file is for verify-distinct: not needed here
    try:
        setup.init(data)  # runs its own event loop: outside ours
        fixture = asyncio.run(setup.prepare(data))
        asyncio.run(measure(data, fixture.prefix_token, args.calls, args.profile, args.segments))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
