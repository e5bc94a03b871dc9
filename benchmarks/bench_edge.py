"""Edge mode (docs/edge.md) measured from outside: nginx on core 0, wrk on core 1, the same run.

- segments under one prefix token through the edge vs the same nginx serving the same 4 KB file unchecked
  (a location of the same server, same TLS), and vs auth_request to the gateway (gateway also on core 0);
- every request's signature checked (the edge's memory off) vs the same nginx doing one Ed25519
  verification per request through the same FFI and nothing else;
- revocation: from ``gatewayctl`` returning (key revoke, principal disable, links revoke; interleaved) to the
  first refused segment through the edge, polled over one keep-alive connection;
- the feed stopped (the gateway SIGSTOPped): time to the first refusal, and from SIGCONT to serving again.

Run: .venv/bin/python -m benchmarks.bench_edge [--duration 10] [--rounds 30]
The machine is shared with other agents: expect noise, and read ratios (same run) before absolute rates.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from benchmarks.run import WrkResult, checked, lua_get, wrk
from examples.demo import stack as local
from tests.edge_stack import EdgeStack, Principal, running
from tests.nginx_server import nginx_binary

SERVER_CORE = "0"
SEGMENT = b"\x47" * 4096  # a 4 KB segment
FILES = {"v/a/master.m3u8": b"#EXTM3U\n", "v/a/seg-1.ts": SEGMENT}
PRIMED = (
    "import sys; from gateway.cli.main import main; print('ready', flush=True);"
    " sys.exit(main(sys.argv[1:]) if sys.stdin.readline() == 'go\\n' else 0)"
)


def _pin(pid: int, core: str) -> None:
    """The process and its children (nginx's workers) to ``core``."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for each in [str(pid), *children]:
        subprocess.run(["taskset", "-a", "-p", "-c", core, each], check=True, capture_output=True)


def _pid_file(path: Path) -> int:
    return int(path.read_text().strip())


def _gateway_pid(edge: EdgeStack) -> int:
    found = subprocess.run(["pgrep", "-f", f"serve --data-dir {edge.stack.layout.data_dir}$"],
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    assert len(found) == 1, found
    return int(found[0])


def _bench_hooks(edge: EdgeStack) -> tuple[str, str]:
    """Two locations of the edge's own server: the file unchecked, and one bare Ed25519 verify per request."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    message = b"GW2\ned25519\ngwk_bench\n1800000000\n1800000300\n\n\nprefix:/v/a/\n"

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    hooks = edge.stack.layout.hooks_dir / "bench.conf"
    proxied = 'proxy_pass http://media_origin/v/a/; proxy_http_version 1.1; proxy_set_header Connection "";'
    hooks.write_text(f"""
location /plain/ {{ {proxied} }}
location /noop/ {{ access_by_lua_block {{ return }} {proxied} }}
location /static/ {{ alias {edge.stack.layout.media_dir}/v/a/; }}
location = /_bench_ed25519 {{
    content_by_lua_block {{
        local b64 = require "ngx.base64"
        local crypto = require "media_gateway.crypto"
        local pk, sig = b64.decode_base64url("{b64(public)}"), b64.decode_base64url("{b64(key.sign(message))}")
        local msg = "{message.decode().encode("unicode_escape").decode()}"
        if not crypto.ed25519_verify(pk, msg, sig) then return ngx.exit(403) end
        ngx.print("ok")
    }}
}}
""")
    return "/plain/seg-1.ts", "/_bench_ed25519"


def _median_run(url: str, path: str, duration: int, what: str, rounds: int) -> WrkResult:
    runs = sorted((checked(wrk(url + path, lua_get({}, path), duration), what) for _ in range(rounds)),
                  key=lambda r: r.rate)  # fmt: skip
    return runs[len(runs) // 2]


def _reload(edge: EdgeStack) -> None:
    pid = _pid_file(edge.stack.layout.nginx_dir / "nginx.pid")
    os.kill(pid, signal.SIGHUP)
    time.sleep(1.0)  # workers replaced (benchmark only: tests wait for events)
    _pin(pid, SERVER_CORE)


def _row(name: str, result: WrkResult, floor: WrkResult | None, target: str) -> str:
    ratio = f"{result.rate / floor.rate:.2f}" if floor else ""
    line = f"| {name} | {result.rate:,.0f}/s | {result.p99_ms:.2f} ms | {ratio} | {target} |"
    print(line, flush=True)
    return line


def throughput(edge: EdgeStack, web: Principal, duration: int) -> list[str]:
    plain, bare = _bench_hooks(edge)
    _reload(edge)
    url = web.url("a", viewer={"id": "bob"}, scope="prefix")
    segment = url.replace("master.m3u8", "seg-1.ts")
    assert edge.get(edge.edge, segment) == 200 and edge.get(edge.edge, plain) == 200
    _pin(_gateway_pid(edge), SERVER_CORE)
    reference_pid = _pid_file(edge.stack.layout.root / "reference" / "nginx" / "nginx.pid")
    _pin(reference_pid, SERVER_CORE)
    rows = []
    floor = _median_run(edge.edge, plain, duration, "no check", 3)
    rows.append(_row("4 KB segment from the origin, no check (same nginx, same proxy_pass)", floor, None, ""))
    static = _median_run(edge.edge, "/static/seg-1.ts", duration, "static", 3)
    rows.append(_row("the same file served by this nginx itself (no proxy hop), no check", static, floor, ""))
    noop = _median_run(edge.edge, "/noop/seg-1.ts", duration, "noop", 3)
    rows.append(_row("an empty access_by_lua_block, then the origin", noop, floor, ""))
    seg = _median_run(edge.edge, segment, duration, "edge segment", 3)
    rows.append(_row("segment, one prefix token, edge mode", seg, floor, "≥ 0.70"))
    via = _median_run(edge.reference, segment, duration, "auth_request segment", 1)
    rows.append(_row("segment, one prefix token, auth_request (gateway on the same core)", via, floor, "(was 0.05)"))
    ed = _median_run(edge.edge, bare, duration, "bare ed25519", 3)
    rows.append(_row("one Ed25519 verify per request through the FFI, nothing else", ed, None, ""))
    with _memory_off(edge):
        every = _median_run(edge.edge, segment, duration, "edge, memory off", 3)
    rows.append(_row("edge mode, every request's signature checked (memory off)", every, ed, "≥ 0.70"))
    return rows


@contextmanager
def _memory_off(edge: EdgeStack) -> Iterator[None]:
    site = next(edge.stack.layout.nginx_dir.glob("media-gateway-edge.conf"))
    text = site.read_text()
    site.write_text(text.replace("wait = 0.5,", "wait = 0.5, remember = false,"))
    _reload(edge)
    edge.wait_fresh()
    try:
        yield
    finally:
        site.write_text(text)
        _reload(edge)
        edge.wait_fresh()


def _primed(stack: local.Stack, *argv: str) -> Callable[[], None]:
    """gatewayctl started ahead (imports done); calling the result runs the command and returns when it has."""
    argv = (*argv, "--data-dir", str(stack.layout.data_dir), "--json")
    proc = subprocess.Popen([sys.executable, "-c", PRIMED, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"

    def go() -> None:
        out, err = proc.communicate("go\n", timeout=30)
        if proc.returncode:
            raise RuntimeError(f"gatewayctl {argv}: {err} {out}")

    return go


class Poller:
    """GETs over one keep-alive TLS connection to the edge, as fast as it answers."""

    def __init__(self, edge: EdgeStack) -> None:
        context = ssl.create_default_context(cafile=edge.stack.pki.ca)
        self._connection = http.client.HTTPSConnection(local.LOOPBACK, edge.stack.ports.edge, context=context)

    def status(self, target: str) -> int:
        self._connection.request("GET", target)
        response = self._connection.getresponse()
        response.read()
        return response.status

    def until(self, target: str, status: int, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while self.status(target) != status:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} never answered {status}")
        return time.monotonic()


def revocation(edge: EdgeStack, rounds: int) -> list[str]:
    stack, poller = edge.stack, Poller(edge)
    kinds: dict[str, list[float]] = {"key": [], "principal": [], "links": []}
    for index in range(rounds):
        kind = list(kinds)[index % 3]
        media_id = f"r{index}"
        (stack.layout.media_dir / "v" / media_id).mkdir(parents=True, exist_ok=True)
        (stack.layout.media_dir / "v" / media_id / "seg-1.ts").write_bytes(SEGMENT)
        stack.gatewayctl("media", "put", media_id, "--owner", "alice", "--workspace", "acme", "--visibility",
                         "unlisted", "--video", f"/v/{media_id}/master.m3u8")  # fmt: skip
        principal = Principal(stack, f"rev{index}", "--perm", "sign:on-behalf")
        target = principal.url(media_id, viewer={"id": "bob"}, scope="prefix").replace("master.m3u8", "seg-1.ts")
        argv = {"key": ("keys", "revoke", principal.kid, "--reason", "bench"),
                "principal": ("principals", "disable", principal.name),
                "links": ("media", "revoke-links", media_id, "--reason", "bench")}[kind]  # fmt: skip
        go = _primed(stack, *argv)
        poller.until(target, 200)
        go()
        returned = time.monotonic()
        kinds[kind].append((poller.until(target, 403) - returned) * 1000)
    every = sorted(ms for values in kinds.values() for ms in values)
    rows = []
    for kind, values in [*kinds.items(), ("all", every)]:
        line = (f"| {kind} | {len(values)} | {statistics.median(values):.1f} ms | {_p99(values):.1f} ms | "
                f"{max(values):.1f} ms | ≤ 250 ms |")  # fmt: skip
        print(line, flush=True)
        rows.append(line)
    return rows


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def stale_feed(edge: EdgeStack, web: Principal, rounds: int = 3) -> list[str]:
    poller = Poller(edge)
    target = web.url("a", viewer={"id": "bob"}, scope="prefix").replace("master.m3u8", "seg-1.ts")
    pid = _gateway_pid(edge)
    rows = []
    for _ in range(rounds):
        poller.until(target, 200)
        stopped = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            denied = poller.until(target, 403) - stopped
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        served = poller.until(target, 200) - resumed
        line = f"| {denied:.2f} s | ≤ 2.5 s | {served:.2f} s | ≤ 1 s |"
        print(line, flush=True)
        rows.append(line)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=30, help="revocations measured")
    parser.add_argument("--parts", default="throughput,revocation,stale", help="which measures (comma-separated)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    nginx_binary()
    root = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    with running(root, FILES) as edge:
        edge.stack.gatewayctl("media", "put", "a", "--owner", "alice", "--workspace", "acme", "--visibility",
                              "unlisted", "--video", "/v/a/master.m3u8")  # fmt: skip
        web = Principal(edge.stack, "web", "--perm", "sign:on-behalf")
        if "throughput" in parts:
            print("| measure | rate | p99 | ratio | target |\n|---|---:|---:|---:|---|")
            throughput(edge, web, args.duration)
        if "revocation" in parts:
            print("\n| revoked | rounds | median | p99 | max | target |\n|---|---:|---:|---:|---:|---|")
            revocation(edge, args.rounds)
        if "stale" in parts:
            print("\n| feed stopped → first refusal | bound | feed back → first served | bound |\n|---:|---|---:|---|")
            stale_feed(edge, web)
    return 0


if __name__ == "__main__":
    sys.exit(main())
