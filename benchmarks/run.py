"""Every row of issue 18's table, measured from outside with wrk, against limits from the same run.

One command: ``.venv/bin/python -m benchmarks.run`` (``--only sign,verify-same``
to pick; ``--duration`` seconds per wrk run). It initialises a throwaway data
directory, starts ``gatewayctl serve`` pinned to core 0 and wrk pinned to core
1 (``taskset``), and an aiohttp hello-world served the same way as the floor;
nginx for the auth_request pair. Ratios are what count: this machine is shared
and noisy, absolute numbers are not comparable between runs.

A path's *limit* is what it could reach if it did nothing but what it cannot avoid: an aiohttp
hello-world request (wrk against ``benchmarks.hello`` on the same core, same run) plus the one
cryptographic operation the path needs (an Ed25519 signature to issue a URL, a verification to check
a new one; measured in-process on the server's core). ``limit/s = 1 / (1/hello/s + t_crypto)``.

Steps: idle, sign, sign-new, page, verify-same, verify-distinct, nginx, batch, batch-new, cloudfront, workers, memory.
``idle`` comes first (the server's CPU over 30 s with no load); ``memory`` runs
``benchmarks.bench_memory`` (its own data: 100 000 keys, 1 M media items; minutes).
Revocation across replicas (``benchmarks.bench_revocation``) needs PostgreSQL: a separate command.

Needs: wrk and nginx (Debian packages ``wrk``, ``nginx-core``), taskset (util-linux).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CORE = "0"
LOAD_CORE = "1"
CONNECTIONS = 32
DISTINCT_PER_RUN = 150_000
PY = sys.executable

_DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d,"bad_status":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    bad_status: int
    cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_per_request_us(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds / self.requests * 1e6


@dataclass
class Row:
    measure: str
    value: str
    floor: str
    ratio: float | None
    target: str
    ok: bool | None
    note: str = ""


@dataclass
class Bench:
    data_dir: Path
    duration: int
    rounds: int = 3
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        verdict = "" if row.ok is None else ("PASS" if row.ok else "FAIL")
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        print(f"  {row.measure:52} {row.value:>16} {row.floor:>16} {ratio:>6} {row.target:>10} {verdict} {row.note}",
              flush=True)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children that have been waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(
    args: list[str], *, core: str = SERVER_CORE, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["taskset", "-c", core, *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def server_pid(proc: subprocess.Popen[bytes]) -> int:
    """taskset execs the program, so the pid is the server's own."""
    return proc.pid


def wrk(url: str, lua: str, duration: int, *, pid: int | None = None, connections: int = CONNECTIONS) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + _DONE_LUA)
    before = cpu_seconds(pid) if pid else None
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name,
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    after = cpu_seconds(pid) if pid else None
    os.unlink(script.name)
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    return WrkResult(
        requests=data["requests"], seconds=data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, errors=data["errors"], bad_status=data["bad_status"],
        cpu_seconds=None if before is None or after is None else after - before,
    )  # fmt: skip


def lua_headers(headers: dict[str, str]) -> str:
    """``local h = {...}``: the request headers as a Lua table."""
    entries = ", ".join(f'["{k}"] = {json.dumps(v)}' for k, v in headers.items())
    return f"local h = {{{entries}}}\n"


def lua_get(headers: dict[str, str], path: str = "/") -> str:
    return lua_headers(headers) + f'request = function() return wrk.format("GET", {json.dumps(path)}, h) end\n'


def lua_post(body: str, headers: dict[str, str], path: str) -> str:
    return (lua_headers({**headers, "Content-Type": "application/json"}) + f"local b = {json.dumps(body)}\n"
            f'request = function() return wrk.format("POST", {json.dumps(path)}, h, b) end\n')  # fmt: skip


def lua_cycle_header(header: str, values_file: Path, path: str = "/v1/verify", start: int = 0) -> str:
    return (
        f"local values = {{}}\nfor line in io.lines({json.dumps(str(values_file))}) do values[#values + 1] = line end\n"
        f"local i = {start}\n"
        "request = function()\n  i = i % #values + 1\n"
        f'  return wrk.format("GET", {json.dumps(path)}, {{["{header}"] = values[i]}})\nend\n'
    )


def fmt_rate(result: WrkResult) -> str:
    return f"{result.rate:,.0f}/s"


def check(result: WrkResult, what: str) -> None:
    if result.errors or result.bad_status:
        raise RuntimeError(f"{what}: {result.errors} socket errors, {result.bad_status} bad statuses")


def checked(result: WrkResult, what: str) -> WrkResult:
    check(result, what)
    return result


Step = Callable[["Bench", "Gateway"], None]


@dataclass
class Gateway:
    url: str
    pid: int
    token: str
    viewer: str
    prefix_token: str
    distinct_file: Path
    hello_url: str
    hello_pid: int


def hello_floor(bench: Bench, gateway: Gateway, lua: str) -> WrkResult:
    result = wrk(gateway.hello_url, lua, bench.duration, pid=gateway.hello_pid)
    check(result, "hello-world")
    return result


def paired(
    bench: Bench, floor: Callable[[], WrkResult], measure: Callable[[], WrkResult]
) -> tuple[WrkResult, WrkResult, float]:
    """Floor and measure in alternating order, ``bench.rounds`` times; the pair with the median ratio.

    The machine is shared: a neighbour's burst lands on one run, not on a whole
    step, and the median of adjacent pairs discards it.
    """
    pairs: list[tuple[float, WrkResult, WrkResult]] = []
    for i in range(bench.rounds):
        if i % 2:
            m, f = measure(), floor()
        else:
            f, m = floor(), measure()
        pairs.append((m.rate / f.rate, f, m))
    pairs.sort(key=lambda p: p[0])
    ratio, f, m = pairs[len(pairs) // 2]
    return f, m, ratio


def limit_rate(hello: WrkResult, crypto_us: float) -> float:
    """Requests/s of hello-world plus one unavoidable cryptographic operation, on the same core."""
    return 1 / (1 / hello.rate + crypto_us / 1e6)


def ed25519_sign_us() -> float:
    return 1e6 / run_pinned(ed25519_sign_rate)


def _issuing_step(bench: Bench, gw: Gateway, name: str, hello_lua: str, lua: str) -> None:
    sign_us = ed25519_sign_us()
    floor, result, _ = paired(
        bench,
        lambda: hello_floor(bench, gw, hello_lua),
        lambda: checked(wrk(gw.url, lua, bench.duration), name),
    )
    limit = limit_rate(floor, sign_us)
    ratio = result.rate / limit
    bench.add(Row(name, fmt_rate(result), f"{limit:,.0f}/s", ratio, ">=0.50", ratio >= 0.50,
                  f"limit: hello {fmt_rate(floor)} + Ed25519 sign {sign_us:.0f} us"))  # fmt: skip
    bench.add(Row(f"{name.split(' (')[0]} p99 latency", f"{result.p99_ms:.1f} ms", "", None, "<=25 ms",
                  result.p99_ms <= 25))  # fmt: skip


def step_sign(bench: Bench, gw: Gateway) -> None:
    from benchmarks.setup import SIGN_BODY

    lua = lua_post(SIGN_BODY, {"Authorization": f"Bearer {gw.token}"}, "/v1/sign")
    _issuing_step(bench, gw, "POST /v1/sign (JWT + authz + durable audit)", lua_post(SIGN_BODY, {}, "/"), lua)


def step_sign_new(bench: Bench, gw: Gateway) -> None:
    """Every request a URL not issued before in its cache window (its ttl differs: 3 000 in turn, more than the
    signature memo holds), so each pays its Ed25519 signature, as a long tail of items would."""
    lua = (
        lua_headers({"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json"})
        + "local i = 0\nrequest = function()\n  i = i % 3000 + 1\n"
        '  local b = \'{"media_id":"m1","rendition":"video","ttl":\' .. (59 + i) .. '
        '\',"viewer":{"id":"alice","workspaces":["w1"]}}\'\n'
        '  return wrk.format("POST", "/v1/sign", h, b)\nend\n'
    )
    body = json.dumps({"media_id": "m1", "rendition": "video", "ttl": 1000, "viewer": {"id": "alice"}})
    _issuing_step(bench, gw, "POST /v1/sign, every URL new (no signature remembered)", lua_post(body, {}, "/"), lua)


def step_page(bench: Bench, gw: Gateway) -> None:
    lua = lua_get({"Authorization": f"Bearer {gw.viewer}"}, "/m/m1/video")
    _issuing_step(bench, gw, "GET /m/{id}/video (viewer JWT, 302)", lua_get({}), lua)


def step_idle(bench: Bench, gw: Gateway, seconds: float = 30.0) -> None:
    """CPU of the serving process with no request at all (timers, watchers, checkpoints), over 30 s, after
    5 s for start-up's own work (loading the view, the first checkpoint) to finish."""
    time.sleep(5)
    before, started = cpu_seconds(gw.pid), time.monotonic()
    time.sleep(seconds)
    share = (cpu_seconds(gw.pid) - before) / (time.monotonic() - started) * 100
    bench.add(Row("idle CPU of one serve (no requests, 30 s)", f"{share:.2f} %", "", None, "<=0.5 %", share <= 0.5,
                  "utime + stime from /proc/<pid>/stat"))  # fmt: skip


def step_memory(bench: Bench, gw: Gateway) -> None:
    """benchmarks.bench_memory in its own process: 100 000 keys, 1 M media, 25 000 distinct page URLs."""
    out = subprocess.run([PY, "-m", "benchmarks.bench_memory"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"\(peak (\d+) MB\)", out)
    if found is None:
        raise RuntimeError(f"benchmarks.bench_memory printed no peak: {out[-500:]}")
    peak = int(found.group(1))
    bench.add(Row("memory, 100 k keys / 1 M media (peak RSS)", f"{peak} MB", "", None, "<=150 MB", peak <= 150,
                  "benchmarks.bench_memory"))  # fmt: skip


def step_verify_same(bench: Bench, gw: Gateway) -> None:
    segments = bench.data_dir / "segments.txt"
    segments.write_text("".join(f"/v/m1/seg{i}.ts?{gw.prefix_token}\n" for i in range(1000)))
    floor, result, ratio = paired(
        bench,
        lambda: hello_floor(bench, gw, lua_get({})),
        lambda: checked(wrk(gw.url, lua_cycle_header("X-Original-URI", segments), bench.duration), "verify-same"),
    )
    bench.add(Row("GET /v1/verify, one prefix token (HLS player)", fmt_rate(result), fmt_rate(floor), ratio,
                  ">=0.75", ratio >= 0.75, "floor: hello-world"))  # fmt: skip


def ed25519_verify_us() -> float:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from benchmarks._timing import rate

    key = Ed25519PrivateKey.generate()
    message = b"x" * 160
    signature = key.sign(message)
    public = key.public_key()
    return 1e6 / rate(lambda: public.verify(signature, message))


def step_verify_distinct(bench: Bench, gw: Gateway) -> None:
    # Each run starts where no earlier run reached, so no URL is ever presented twice.
    starts = iter(range(0, 10**9, DISTINCT_PER_RUN))
    floor, result, _ = paired(
        bench,
        lambda: hello_floor(bench, gw, lua_get({})),
        lambda: checked(wrk(gw.url, lua_cycle_header("X-Original-URI", gw.distinct_file, start=next(starts)),
                            bench.duration, pid=gw.pid), "verify-distinct"),
    )  # fmt: skip
    one_verify = run_pinned(ed25519_verify_us)
    limit = limit_rate(floor, one_verify)
    ratio = result.rate / limit
    cpu, floor_cpu = result.cpu_per_request_us or 0.0, floor.cpu_per_request_us or 0.0
    bench.add(Row("GET /v1/verify, every URL distinct", fmt_rate(result), f"{limit:,.0f}/s", ratio, ">=0.60",
                  ratio >= 0.60, f"limit: hello {fmt_rate(floor)} + Ed25519 verify {one_verify:.0f} us; "
                  f"CPU/request {cpu:.0f} us (hello {floor_cpu:.0f} us)"))  # fmt: skip


def ed25519_sign_rate(message_bytes: int = 120) -> float:
    """Raw in-process Ed25519 signatures per second on this core: the floor of a batch of native URLs."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from benchmarks._timing import rate

    key = Ed25519PrivateKey.generate()
    message = b"x" * message_bytes
    return rate(lambda: key.sign(message))


def step_batch(bench: Bench, gw: Gateway) -> None:
    """100 items per call; its unit is URLs/s against raw Ed25519 signing in one process on one core."""
    items = [{"media_id": f"m{i}", "rendition": "video"} for i in range(100)]
    body = json.dumps({"items": items, "viewer": {"id": "alice", "workspaces": ["w1"]}})
    lua = lua_post(body, {"Authorization": f"Bearer {gw.token}"}, "/v1/sign/batch")
    runs = [checked(wrk(gw.url, lua, bench.duration, connections=4), "batch") for _ in range(bench.rounds)]
    result = sorted(runs, key=lambda r: r.rate)[len(runs) // 2]
    urls = result.rate * 100
    floor = run_pinned(ed25519_sign_rate)
    ratio = urls / floor
    bench.add(Row("POST /v1/sign/batch, 100 items: URLs/s", f"{urls:,.0f}/s", f"{floor:,.0f}/s", ratio, ">=0.60",
                  ratio >= 0.60, f"floor: raw Ed25519 signing in-process; p99 {result.p99_ms:.1f} ms"))  # fmt: skip


def step_batch_new(bench: Bench, gw: Gateway) -> None:
    """As ``batch``, but every call's URLs new (its ttl differs, 3 000 in turn): each URL pays its signature."""
    items = [{"media_id": f"m{i}", "rendition": "video", "ttl": 999999} for i in range(100)]
    template = json.dumps({"items": items, "viewer": {"id": "alice", "workspaces": ["w1"]}}, separators=(",", ":"))
    lua = (
        lua_headers({"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json"})
        + f"local template = {json.dumps(template)}\nlocal i = 0\n"
        "request = function()\n  i = i % 3000 + 1\n"
        '  local b = string.gsub(template, "999999", tostring(59 + i))\n'
        '  return wrk.format("POST", "/v1/sign/batch", h, b)\nend\n'
    )
    runs = [checked(wrk(gw.url, lua, bench.duration, connections=4), "batch, new URLs") for _ in range(bench.rounds)]
    result = sorted(runs, key=lambda r: r.rate)[len(runs) // 2]
    urls, floor = result.rate * 100, run_pinned(ed25519_sign_rate)
    bench.add(Row("POST /v1/sign/batch, 100 new URLs: URLs/s", f"{urls:,.0f}/s", f"{floor:,.0f}/s", urls / floor,
                  ">=0.60", urls / floor >= 0.60, f"every URL signed afresh; p99 {result.p99_ms:.1f} ms"))  # fmt: skip


def run_pinned(measure: Callable[[], float]) -> float:
    """A floor measured in-process, on the server's core (as the server runs), by this interpreter."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        return measure()
    finally:
        os.sched_setaffinity(0, previous)


def cloudfront_rates() -> tuple[float, float]:
    """(gateway's CloudFront dialect, botocore's CloudFrontSigner): URLs/s, same RSA-2048 key, canned policy."""
    from botocore.signers import CloudFrontSigner
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from benchmarks._timing import rate
    from gateway.keys.material import KeyMaterial
    from gateway.model import KeyAlgorithm
    from gateway.signing.dialects.base import SignRequest
    from gateway.signing.dialects.cloudfront import CloudFrontDialect

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    public = private.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    material = KeyMaterial("K2JCJMDEHXQW5F", KeyAlgorithm.RSA_2048, public, der)
    dialect = CloudFrontDialect()
    url = "https://d111111abcdef8.cloudfront.net/v/m1/master.m3u8"
    request = SignRequest(url=url, expires=1_900_000_000)
    ours = rate(lambda: dialect.sign(request, material))
    sha1 = hashes.SHA1()  # noqa: S303 (CloudFront's canned policies are RSA-SHA1 by definition)
    signer = CloudFrontSigner("K2JCJMDEHXQW5F", lambda message: private.sign(message, padding.PKCS1v15(), sha1))
    expires = datetime.datetime.fromtimestamp(1_900_000_000, tz=datetime.UTC)
    theirs = rate(lambda: signer.generate_presigned_url(url, date_less_than=expires))
    return ours, theirs


def step_cloudfront(bench: Bench, gw: Gateway) -> None:
    ours, theirs = run_pinned(lambda: _median_pair(cloudfront_rates, bench.rounds))
    ratio = ours / theirs
    bench.add(Row("CloudFront issuance, RSA-2048 (in-process)", f"{ours:,.0f}/s", f"{theirs:,.0f}/s", ratio,
                  ">=0.85", ratio >= 0.85, "floor: botocore CloudFrontSigner, same key and policy"))  # fmt: skip


def _median_pair(measure: Callable[[], tuple[float, float]], rounds: int) -> tuple[float, float]:
    pairs = sorted((measure() for _ in range(rounds)), key=lambda p: p[0] / p[1])
    return pairs[len(pairs) // 2]


_NGINX_PAIR = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream gateway {{ server 127.0.0.1:{gateway}; keepalive 64; }}
    upstream hello {{ server 127.0.0.1:{hello}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{gateway_edge};
        root {dir}/origin;
        location /v/ {{ auth_request /_verify; }}
        location = /_verify {{
            internal;
            proxy_pass http://gateway/v1/verify;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Gateway-Profile native;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
    server {{
        listen 127.0.0.1:{hello_edge};
        root {dir}/origin;
        location /v/ {{ auth_request /_hello; }}
        location = /_hello {{
            internal;
            proxy_pass http://hello/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
    }}
}}
"""


def lua_cycle_path(values_file: Path) -> str:
    return (
        f"local values = {{}}\nfor line in io.lines({json.dumps(str(values_file))}) do values[#values + 1] = line end\n"
        'local i = 0\nrequest = function()\n  i = i % #values + 1\n  return wrk.format("GET", values[i])\nend\n'
    )


def step_nginx(bench: Bench, gw: Gateway) -> None:
    """nginx auth_request -> /v1/verify against nginx auth_request -> hello-world; nginx shares the server's core."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    root = Path(tempfile.mkdtemp(prefix="gw-bench-nginx-"))
    root.chmod(0o755)  # nginx's workers run as www-data: the origin must be readable to them
    segments = root / "origin" / "v" / "m1"
    segments.mkdir(parents=True)
    for i in range(1000):
        (segments / f"seg{i}.ts").write_bytes(b"s" * 188)
    paths = root / "paths.txt"
    paths.write_text("".join(f"/v/m1/seg{i}.ts?{gw.prefix_token}\n" for i in range(1000)))
    gateway_edge, hello_edge = free_port(), free_port()
    conf = root / "nginx.conf"
    conf.write_text(_NGINX_PAIR.format(dir=root, gateway=gw.url.rsplit(":", 1)[1], hello=gw.hello_url.rsplit(":", 1)[1],
                                       gateway_edge=gateway_edge, hello_edge=hello_edge))  # fmt: skip
    with process([nginx, "-c", str(conf), "-e", str(root / "error.log")]), _removed(root):
        wait_http(f"http://127.0.0.1:{hello_edge}/v/m1/seg0.ts")
        wait_http(f"http://127.0.0.1:{gateway_edge}/v/m1/seg0.ts?{gw.prefix_token}")
        lua = lua_cycle_path(paths)
        floor, result, ratio = paired(
            bench,
            lambda: checked(wrk(f"http://127.0.0.1:{hello_edge}", lua, bench.duration), "nginx->hello"),
            lambda: checked(wrk(f"http://127.0.0.1:{gateway_edge}", lua, bench.duration), "nginx->verify"),
        )
    bench.add(Row("nginx auth_request -> /v1/verify (HLS segments)", fmt_rate(result), fmt_rate(floor), ratio,
                  ">=0.80", ratio >= 0.80, "floor: nginx auth_request -> hello-world"))  # fmt: skip


@contextmanager
def _removed(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def step_workers(bench: Bench, gw: Gateway) -> None:
    """``serve --workers 2`` against 1 worker on this 2-core machine, where wrk needs one of the cores.

    Issue 18 asks at least 1.7 times one worker for sign and for verify. wrk's own CPU shares the second core
    with the second worker, so the honest ceiling is below 2, and lower for verify (wrk's cost per request is a
    larger share of a cheap request than of a signing one). The ceiling is measured in the same run: two
    hello-world processes sharing a port against one, under the same wrk; each gateway row also prints its
    ratio as a share of that ceiling.
    """
    segments = bench.data_dir / "segments.txt"
    segments.write_text("".join(f"/v/m1/seg{i}.ts?{gw.prefix_token}\n" for i in range(1000)))
    from benchmarks.setup import SIGN_BODY

    loads = {
        "verify, same token": lua_cycle_header("X-Original-URI", segments),
        "sign": lua_post(SIGN_BODY, {"Authorization": f"Bearer {gw.token}"}, "/v1/sign"),
    }
    ceiling = _hello_two_processes(bench, gw)
    port = free_port()
    serve = [PY, "-m", "gateway.cli.main", "serve", "--data-dir", str(bench.data_dir), "--port", str(port),
             "--workers", "2"]  # fmt: skip
    with process(serve, core="0,1"):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        one, two = gw.url, f"http://127.0.0.1:{port}"
        for name, lua in loads.items():
            floor, result, ratio = paired(
                bench,
                lambda lua=lua, name=name: checked(wrk(one, lua, bench.duration), f"{name}, 1 worker"),
                lambda lua=lua, name=name: checked(wrk(two, lua, bench.duration), f"{name}, 2 workers"),
            )
            share = f"{ratio / ceiling:.2f} of hello-world's own 2-vs-1 ({ceiling:.2f})"
            bench.add(Row(f"serve --workers 2 vs 1 ({name})", fmt_rate(result), fmt_rate(floor), ratio, ">=1.7",
                          ratio >= 1.7, share))  # fmt: skip


def _hello_two_processes(bench: Bench, gw: Gateway) -> float:
    """Two hello-world processes on one port (cores 0 and 1) against one (core 0): what wrk on core 1 leaves."""
    port = free_port()
    hello = [PY, "-m", "benchmarks.hello", "--port", str(port), "--reuse-port"]
    with process(hello, core="0"), process(hello, core="1"):
        wait_http(f"http://127.0.0.1:{port}/")
        two = f"http://127.0.0.1:{port}"
        floor, result, ratio = paired(
            bench,
            lambda: checked(wrk(gw.hello_url, lua_get({}), bench.duration), "hello-world, 1 process"),
            lambda: checked(wrk(two, lua_get({}), bench.duration), "hello-world, 2 processes"),
        )
    bench.add(Row("hello-world, 2 processes vs 1 (the ceiling)", fmt_rate(result), fmt_rate(floor), ratio, "",
                  None, "wrk shares the second core"))  # fmt: skip
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="floor/measure pairs per step; the median counts")
    parser.add_argument("--only", help="comma-separated steps: " + ", ".join(STEPS))
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"benchmarks.run needs {tool} (apt-get install -y wrk util-linux)", file=sys.stderr)
            return 2
    chosen = args.only.split(",") if args.only else list(STEPS)
    data_dir = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    bench = Bench(data_dir, args.duration, args.rounds)
    try:
        from benchmarks.setup import init, prepare

        init(data_dir)
        fixture = asyncio.run(prepare(data_dir))
        port, hello_port = free_port(), free_port()
        serve = [PY, "-m", "gateway.cli.main", "serve", "--data-dir", str(data_dir), "--port", str(port)]
        with process(serve) as server, process([PY, "-m", "benchmarks.hello", "--port", str(hello_port)]) as hello:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            wait_http(f"http://127.0.0.1:{hello_port}/")
            gw = Gateway(f"http://127.0.0.1:{port}", server_pid(server), fixture.token, fixture.viewer,
                         fixture.prefix_token, fixture.distinct_file, f"http://127.0.0.1:{hello_port}",
                         server_pid(hello))  # fmt: skip
            print(f"  {'measure':52} {'value':>16} {'floor':>16} {'ratio':>6} {'target':>10}")
            for name in chosen:
                STEPS[name](bench, gw)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if all(r.ok is not False for r in bench.rows) else 1


STEPS: dict[str, Step] = {
    "idle": step_idle,  # first: before any load has warmed anything up
    "sign": step_sign,
    "sign-new": step_sign_new,
    "page": step_page,
    "verify-same": step_verify_same,
    "verify-distinct": step_verify_distinct,
    "nginx": step_nginx,
    "batch": step_batch,
    "batch-new": step_batch_new,
    "cloudfront": step_cloudfront,
    "workers": step_workers,
    "memory": step_memory,
}

if __name__ == "__main__":
    sys.exit(main())
