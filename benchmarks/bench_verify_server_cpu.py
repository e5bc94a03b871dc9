"""Server CPU per request over real sockets: hello-world, ``/healthz`` and a remembered ``/v1/verify`` (issue 18).

Run: .venv/bin/python -m benchmarks.bench_verify_server_cpu [--requests 20000] [--distinct] [--only verify]

A light stand-in for ``benchmarks.run --only verify-same`` on a shared machine: the server (``gatewayctl
serve``, or ``benchmarks.hello``) pinned to core 0, this process as the client on core 1, a few keep-alive
connections each with one request in flight. What is reported is the server's CPU (``/proc/<pid>/stat``)
per request, which a neighbour's load inflates far less than a rate; the ratio hello/verify is what wrk's
ratio would be if the server's core were the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import tempfile
from pathlib import Path

from benchmarks import setup
from benchmarks.run import PY, free_port, process, server_pid, wait_http

CONNECTIONS = 8


def _request(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _read_answer(sock: socket.socket, buffer: bytearray) -> int:
    """Reads one response (Content-Length bodies only) off ``buffer``/``sock``; returns its status."""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    total = len(head) + 4 + length
    while len(buffer) < total:
        buffer += sock.recv(65536)
    del buffer[:total]
    return int(head.split(b" ", 2)[1])


def _cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def drive(port: int, requests: list[bytes], pid: int, *, warm: list[bytes] | None = None) -> tuple[float, float]:
    """(user, system) µs of server CPU per request, ``requests`` sent round-robin over CONNECTIONS connections
    after ``warm`` (default: ``requests`` themselves) warmed the server up."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    buffers = [bytearray() for _ in socks]
    for sent in (warm if warm is not None else requests, requests):  # the first warms up; the second counts
        before = _cpu(pid)
        for start in range(0, len(sent), CONNECTIONS):
            batch = sent[start : start + CONNECTIONS]
            for sock, data in zip(socks, batch, strict=False):
                sock.sendall(data)
            for sock, buffer, _ in zip(socks, buffers, batch, strict=False):
                status = _read_answer(sock, buffer)
                assert status == 200, status
        after = _cpu(pid)
    for sock in socks:
        sock.close()
    return tuple((b - a) / len(requests) * 1e6 for a, b in zip(before, after, strict=True))  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--distinct", action="store_true", help="every verified URL new (verify-distinct)")
    parser.add_argument("--only", choices=["verify"], help="measure the verify row alone")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    data = Path(tempfile.mkdtemp(prefix="gw-verify-server-"))
    n = args.requests
    setup.DISTINCT_URLS = 2 * n if args.distinct else 0  # a warm-up's worth and a measured one, none repeated
    try:
        setup.init(data)
        fixture = asyncio.run(setup.prepare(data))
        if args.distinct:
            uris = fixture.distinct_file.read_text().split()
        else:
            uris = [f"/v/m1/seg{i}.ts?{fixture.prefix_token}" for i in range(1000)]
        verify = [_request("/v1/verify", {"X-Original-URI": uri}) for uri in uris]
        warm, verify = (verify[:n], verify[n:]) if args.distinct else (None, [verify[i % 1000] for i in range(n)])
        port, hello_port = free_port(), free_port()
        results: list[tuple[str, tuple[float, float]]] = []
        if args.only is None:
            with process([PY, "-m", "benchmarks.hello", "--port", str(hello_port)]) as proc:
                wait_http(f"http://127.0.0.1:{hello_port}/")
                results.append(("hello-world", drive(hello_port, [_request("/", {})] * n, server_pid(proc))))
        serve = [PY, "-m", "gateway.cli.main", "serve", "--data-dir", str(data), "--port", str(port)]
        with process(serve) as proc:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            if args.only is None:
                results.append(("/healthz", drive(port, [_request("/healthz", {})] * n, server_pid(proc))))
            results.append(("/v1/verify", drive(port, verify, server_pid(proc), warm=warm)))
        hello_cpu = sum(results[0][1])
        for name, (user, system) in results:
            ratio = f"(hello/this {hello_cpu / (user + system):.2f})" if args.only is None else ""
            print(f"{name:12} {user:6.1f} user + {system:5.1f} system µs/request of server CPU {ratio}")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
