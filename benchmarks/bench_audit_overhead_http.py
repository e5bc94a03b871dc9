"""``POST /v1/sign`` end to end with the durable, chained audit log vs. a null audit sink.

The complement of bench_audit_overhead.py (which calls the issuer directly and
so shows the log's cost at its largest): here the real application serves
HTTP on loopback, authenticating each caller's JWT, exactly as a backend
sees it. One process serves two apps over the same services, one with the
real audit batcher and one with a null sink; a separate client process drives
them in paired rounds of alternating order and reports the median ratio.

Run: .venv/bin/python -m benchmarks.bench_audit_overhead_http [--requests N] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from benchmarks.bench_audit_overhead import CTX, NullBatcher, paired_rounds, print_summary
from gateway.access import tokens
from gateway.cli.main import main as gatewayctl
from gateway.config import load_config
from gateway.model import KeyAlgorithm, Permission, PrincipalKind, Rendition, Visibility
from gateway.services import Services, open_services
from gateway.signing.issuance import Issuer
from gateway.web.app import create_app

MEDIA = 50


async def _setup(data_dir: Path) -> tuple[Services, str]:
    services = await open_services(load_config(data_dir, environ={}))
    permissions = frozenset({Permission.SIGN, Permission.SIGN_ON_BEHALF})
    created = await services.admin.add_principal(CTX, "web", PrincipalKind.SERVICE, permissions, None, time.time())
    await services.admin.create_key(CTX, "web", KeyAlgorithm.ED25519, time.time())
    for i in range(MEDIA):
        paths = {Rendition.THUMBNAIL: f"/t/m{i}.jpg"}
        await services.admin.put_media(CTX, f"m{i}", f"user{i}", "w1", Visibility.PRIVATE, paths, time.time())
    token = tokens.mint_principal_token(
        credential_id=created.credential.id, principal_id="web", private_seed=created.credential_seed,
        audience=services.config.api_audience, now=time.time(), ttl=3600,
    )  # fmt: skip
    return services, token


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


async def server_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await asyncio.to_thread(gatewayctl, ["init", "--data-dir", tmp])
        services, token = await _setup(Path(tmp))
        real = services.issuer
        null = Issuer(services.store, services.keyring, services.profiles,
                      real._policy, services.audit_log, NullBatcher())  # type: ignore[arg-type]  # fmt: skip
        real_runner, real_port = await _serve(create_app(services, close_services=False))
        null_app = create_app(dataclasses.replace(services, issuer=null), close_services=False)
        null_app.cleanup_ctx.clear()  # one checkpoint loop per store is enough (the real app runs it)
        null_runner, null_port = await _serve(null_app)
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.bench_audit_overhead_http", "--client",
            "--real-port", str(real_port), "--null-port", str(null_port), "--token", token,
            "--requests", str(args.requests), "--concurrency", str(args.concurrency), "--rounds", str(args.rounds),
        )  # fmt: skip
        code = await client.wait()
        size = (await services.store.audit.frontier()).size
        await real_runner.cleanup()
        await null_runner.cleanup()
        await services.close()
    print(f"(log now {size} records)")
    sys.exit(code)


async def _round(session: aiohttp.ClientSession, port: int, token: str, requests: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "bench/1"}

    async def one(i: int) -> None:
        body = {"media_id": f"m{i % MEDIA}", "rendition": "thumbnail",
                "viewer": {"id": f"user{i % MEDIA}", "workspaces": []}, "viewer_ip": "198.51.100.7"}  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1/sign"
        async with semaphore, session.post(url, json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            await response.read()

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return requests / (time.perf_counter() - start)


async def client_main(args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for port in (args.null_port, args.real_port):  # warm both: connections, caches, subject keys
            await _round(session, port, args.token, 200, args.concurrency)
        ports = {"null": args.null_port, "durable": args.real_port}

        async def run(name: str) -> float:
            return await _round(session, ports[name], args.token, args.requests, args.concurrency)

        pairs = await paired_rounds(run, args.rounds)
    header = f"POST /v1/sign over HTTP: requests={args.requests} concurrency={args.concurrency} rounds={args.rounds}"
    print_summary(header, pairs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--real-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--null-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    asyncio.run(client_main(parsed) if parsed.client else server_main(parsed))
