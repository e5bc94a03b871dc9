"""Server instructions per request by callgrind, over real sockets: hello-world and a remembered ``/v1/verify``,
or ``POST /v1/sign`` and ``GET /m/{id}/video`` against hello-world's POST and GET.

Run: .venv/bin/python -m benchmarks.callgrind_verify [--requests 2000] [--only verify|hello] [--source DIR]
     [--distinct] [--path verify|sign|page]

The setup of ``benchmarks.bench_verify_server_cpu`` (``gatewayctl serve`` on a fresh data directory, 1000
segments under one prefix token, a few keep-alive connections), with the server run under ``valgrind
--tool=callgrind`` and counted only while the measured requests are sent: instrumentation is switched on after
a warm-up of the same requests and off after them (``callgrind_control``). Instruction counts do not move with
a neighbour's load, so two trees can be compared on a busy machine. The state poll is slowed (10 s, staleness
60 s) so that valgrind's slowness does not bill background polling to the requests.

``--source DIR``: serve the ``gateway`` package found in DIR (a checkout of another commit, e.g. ``git
archive main``) instead of this one: the same harness, the same minutes. ``--distinct``: every verified URL
new (a warm-up of as many other new URLs first), as ``benchmarks.run``'s verify-distinct row.

``--path sign`` / ``--path page``: the issuing paths instead, with the requests of ``benchmarks.run``'s sign and
page rows (the same item each time, so within the cache window the signature memo answers, as there). Each
answer's audit record is committed (group commits of up to ``CONNECTIONS`` records); callgrind counts every
thread's instructions, the audit writer's included, but not the time the kernel spends in fsync. The floor is
hello-world's ``POST /`` (it reads the body and answers a sign-sized JSON) or ``GET /``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import setup
from benchmarks.bench_handler_cpu import _request as _post
from benchmarks.bench_verify_server_cpu import _read_answer, _request
from benchmarks.run import PY, SERVER_CORE, free_port, wait_http

CONNECTIONS = 8
_SLOW_POLL = {"GATEWAY_STATE_POLL_EVERY": "10", "GATEWAY_STATE_STALE_AFTER": "60"}


_JSON = {"Content-Type": "application/json"}
# What each path answers: every other status fails the run (a refusal is not the path measured).
_ANSWERS = {"verify": 200, "sign": 200, "page": 302}


def _floor(path: str) -> bytes:
    """hello-world's request for ``path``: a POST of the same body for sign, else a GET."""
    return _post("POST", "/", _JSON, setup.SIGN_BODY.encode()) if path == "sign" else _request("/", {})


def _issuing(path: str, fixture: setup.Fixture) -> bytes:
    """The gateway's request for the sign or page path: ``benchmarks.run``'s."""
    if path == "sign":
        return _post("POST", "/v1/sign", {**_JSON, "Authorization": f"Bearer {fixture.token}"},
                     setup.SIGN_BODY.encode())  # fmt: skip
    return _request("/m/m1/video", {"Authorization": f"Bearer {fixture.viewer}"})


def _send(port: int, requests: list[bytes], answer: int = 200) -> None:
    import socket

    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    buffers = [bytearray() for _ in socks]
    for start in range(0, len(requests), CONNECTIONS):
        batch = requests[start : start + CONNECTIONS]
        for sock, data in zip(socks, batch, strict=False):
            sock.sendall(data)
        for sock, buffer, _ in zip(socks, buffers, batch, strict=False):
            status = _read_answer(sock, buffer)
            assert status == answer, status
    for sock in socks:
        sock.close()


@contextmanager
def _server(args: list[str], env: dict[str, str], cwd: Path | None, log: Path) -> Iterator[int]:
    """The server on the server core (its pid: taskset and valgrind exec), its output in ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *args], env={**os.environ, **env}, cwd=cwd,
                                stdout=out, stderr=out, start_new_session=True)  # fmt: skip
        try:
            yield proc.pid
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def _total(out_dir: Path) -> int:
    """The instructions counted in the dumps callgrind wrote (every thread's)."""
    total = 0
    for path in out_dir.glob("callgrind.out*"):
        match = re.search(r"^totals: (\d+)", path.read_text(errors="replace"), re.M)
        total += int(match.group(1)) if match else 0
    return total


def measure(
    args: list[str],
    url: str,
    port: int,
    requests: list[bytes],
    env: dict[str, str],
    cwd: Path | None = None,
    warm: list[bytes] | None = None,
    answer: int = 200,
) -> float:
    """Instructions per request of the server ``args`` (run under callgrind) answering ``requests`` (each with
    status ``answer``), after ``warm`` (the same requests unless given)."""
    out_dir = Path(tempfile.mkdtemp(prefix="gw-callgrind-"))
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/callgrind.out"]
    with _server([*valgrind, *args], env, cwd, out_dir / "server.log") as server:
        wait_http(url, timeout=300)
        pid = str(server)
        _send(port, requests if warm is None else warm, answer)  # warm-up, not counted
        _control("-i", "on", pid)
        _send(port, requests, answer)
        _control("-i", "off", pid)
        _control("-d", pid)
        time.sleep(1)
    total = _total(out_dir)
    if os.environ.get("KEEP_CALLGRIND"):
        print(f"kept {out_dir}")
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
    return total / len(requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", choices=["verify", "hello"])
    parser.add_argument("--source", type=Path, help="a directory holding the gateway package to serve")
    parser.add_argument("--distinct", action="store_true", help="every verified URL new (verify-distinct's load)")
    parser.add_argument("--path", choices=["verify", "sign", "page"], default="verify", help="the path measured")
    args = parser.parse_args()
    if args.distinct and args.path != "verify":
        parser.error("--distinct is verify-distinct's load: it goes with --path verify")
    os.sched_setaffinity(0, {1})
    n = args.requests
    env = dict(_SLOW_POLL)
    # ``python -m`` puts the working directory first on sys.path: the package found there is the one served.
    source = args.source.resolve() if args.source is not None else None
    data = Path(tempfile.mkdtemp(prefix="gw-callgrind-data-"))
    setup.DISTINCT_URLS = 2 * n if args.distinct else 0
    warm = None
    try:
        if args.only != "hello":
            setup.init(data)
            fixture = asyncio.run(setup.prepare(data))
            if args.path != "verify":
                measured = [_issuing(args.path, fixture)] * n
            else:
                uris = [f"/v/m1/seg{i}.ts?{fixture.prefix_token}" for i in range(1000)]
                measured = [_request("/v1/verify", {"X-Original-URI": uris[i % 1000]}) for i in range(n)]
                if args.distinct:  # the warm-up's URLs, then as many others: none asked about before
                    urls = [urlsplit(line) for line in fixture.distinct_file.read_text().split()]
                    every = [_request("/v1/verify", {"X-Original-URI": f"{u.path}?{u.query}"}) for u in urls]
                    warm, measured = every[:n], every[n:]
        if args.only != "verify":
            port = free_port()
            hello = [PY, "-m", "benchmarks.hello", "--port", str(port)]
            cost = measure(hello, f"http://127.0.0.1:{port}/", port, [_floor(args.path)] * n, env)
            print(f"hello-world  {cost:9.0f} instructions/request ({'POST' if args.path == 'sign' else 'GET'})")
        if args.only != "hello":
            port = free_port()
            serve = [PY, "-m", "gateway.cli.main", "serve", "--data-dir", str(data), "--port", str(port)]
            cost = measure(serve, f"http://127.0.0.1:{port}/healthz", port, measured, env, source, warm,
                           _ANSWERS[args.path])  # fmt: skip
            what = {"verify": "distinct" if args.distinct else "remembered", "sign": "POST /v1/sign",
                    "page": "GET /m/m1/video"}[args.path]  # fmt: skip
            print(f"{args.path:12} {cost:9.0f} instructions/request, {what} ({args.source or 'this tree'})")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
