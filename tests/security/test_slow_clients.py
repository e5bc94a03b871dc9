"""Slow and idle clients against the real ``gatewayctl serve`` over real sockets (issue 17, item 3).

Backends reach the API directly, so nginx's timeouts do not protect it: half a
request line, headers trickled a byte at a time, a body that never finishes, an
idle keep-alive connection and a flood of idle sockets under a low ``ulimit -n``
must all end without starving ``/readyz`` or issuance. Every wait is for an
event (the server closing, an answer), bounded by a generous timeout.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Served, ctl, http_json, init, start_serve, wait_until
from tests.tls_support import client_context, https, pki_in

pytestmark = pytest.mark.e2e

EVENT_WITHIN = 30.0  # seconds: how long a test waits for the server to act, never a measure of speed
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init(tmp_path_factory.mktemp("slow") / "gw")


@pytest.fixture(scope="module")
def token(data_dir: Path) -> str:
    """A backend principal's API token, and an item m1 it may sign for."""
    added = ctl(data_dir, "principals", "add", "web", "--perm", "sign", "--perm", "sign:on-behalf")
    ctl(data_dir, "keys", "create", "--principal", "web")
    ctl(data_dir, "media", "put", "m1", "--owner", "alice", "--workspace", "w1", "--video", "/v/m1/index.m3u8")
    return str(ctl(data_dir, "token", "--credential", added["credential_file"])["token"])


def _serve(data_dir: Path, *argv: str, open_files: int | None = None, **server: str) -> Served:
    env = {f"GATEWAY_SERVER_{k.upper()}": v for k, v in server.items()}
    return start_serve(data_dir, *argv, env=env, open_files=open_files)


@pytest.fixture
def strict(data_dir: Path) -> Iterator[Served]:
    """Short header and body deadlines; a keep-alive window far longer, so only the deadlines can close."""
    served = _serve(data_dir, header_timeout="1", body_timeout="1", keepalive_timeout="600")
    yield served
    served.stop()


def _connect(served: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=EVENT_WITHIN)


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the event waited for)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True once the server has closed (readable, and nothing left to read); False if ``seconds`` pass first."""
    readable, _, _ = select.select([sock], [], [], seconds)
    if not readable:
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def _metrics(served: Served) -> dict[str, float]:
    """/metrics (loopback may scrape it) as series -> value."""
    with urllib.request.urlopen(served.base + "/metrics", timeout=EVENT_WITHIN) as response:
        text = response.read().decode()
    return {name: float(value) for name, _, value in (line.rpartition(" ") for line in text.splitlines())
            if name and not name.startswith("#")}  # fmt: skip


def test_half_a_request_line_is_closed_at_the_header_deadline(strict: Served) -> None:
    with _connect(strict) as sock:
        sock.sendall(b"GET /heal")
        assert _until_closed(sock) == b""  # closed without an answer: the request never was one
    assert _metrics(strict)['gateway_connections_closed_total{reason="header_timeout"}'] >= 1


def test_a_silent_connection_is_closed_at_the_header_deadline(strict: Served) -> None:
    with _connect(strict) as sock:
        assert _until_closed(sock) == b""


def test_headers_trickled_a_byte_at_a_time_are_refused(strict: Served) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nUser-Agent: " + b"t" * 200 + b"\r\n\r\n"
    with _connect(strict) as sock:
        sent = 0
        for byte in request:  # one byte each tenth of a second: 25 s for the whole request
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if _closed_within(sock, 0.1):
                break
        assert sent < len(request)
        assert _until_closed(sock) == b""


def test_a_body_that_never_finishes_gets_a_408_and_the_connection_closes(strict: Served, token: str) -> None:
    head = b"POST /v1/sign HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
    with _connect(strict) as sock:
        sock.sendall(head + f"Authorization: Bearer {token}\r\n\r\n".encode() + b'{"media_id": ')
        answer = _until_closed(sock)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {"error": "request_timeout", "message": "the request body did not arrive within 1 s"}


def test_an_idle_keep_alive_connection_is_closed(data_dir: Path) -> None:
    served = _serve(data_dir, header_timeout="300", keepalive_timeout="1")
    try:
        with _connect(served) as sock:
            sock.sendall(HEALTH)
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            assert b"Connection: close" not in first  # kept alive, and then closed for idling
            assert _until_closed(sock) == b""
    finally:
        served.stop()


def test_a_request_on_a_kept_alive_connection_gets_its_own_header_deadline(strict: Served) -> None:
    with _connect(strict) as sock:
        sock.sendall(HEALTH)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /heal")
        assert _until_closed(sock) == b""


def test_a_later_request_on_a_kept_alive_connection_gets_its_whole_header_deadline(strict: Served) -> None:
    """One timer serves a connection's requests (no timer per request): when the first request's deadline comes
    round while a later one is still sending its headers, it waits for the later one's own deadline."""
    with _connect(strict) as sock:
        sock.sendall(HEALTH)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.6)  # the connection's timer, armed at the accept, is due in 0.4 s
        started = time.monotonic()
        sock.sendall(b"GET /heal")
        assert _until_closed(sock) == b""
        assert time.monotonic() - started >= 0.9  # its own second (less the clock's granularity), not the rest


@pytest.mark.parametrize("workers", [1, 2])
def test_idle_sockets_under_a_low_file_limit_do_not_starve_health_or_issuance(
    data_dir: Path, token: str, workers: int
) -> None:
    # Deadlines far away: only the connection cap can keep descriptors free. Checkpoints after every record.
    env = {"GATEWAY_SERVER_HEADER_TIMEOUT": "300", "GATEWAY_SERVER_KEEPALIVE_TIMEOUT": "300",
           "GATEWAY_AUDIT_CHECKPOINT_EVERY_RECORDS": "1"}  # fmt: skip
    served = start_serve(data_dir, "--workers", str(workers), env=env, open_files=256)
    idle: list[socket.socket] = []
    try:
        for _ in range(300 * workers):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=EVENT_WITHIN)
            idle.append(sock)
            if len(idle) % 2:
                sock.sendall(b"GET /hea")  # half of them start a request and stall
        assert http_json(served.base + "/readyz") == (200, {"status": "ready"})
        request = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
        status, body = http_json(served.base + "/v1/sign", "POST", request, {"Authorization": f"Bearer {token}"})
        assert status == 200, body
        metrics = _metrics(served)  # one worker's (each has its own descriptors and cap)
        assert metrics["gateway_connections_max"] == 128  # ulimit -n 256, less 64 reserved and two batches of 32
        assert metrics['gateway_connections_closed_total{reason="at_cap"}'] > 0
        assert metrics["gateway_connections_open"] <= 128
        assert metrics["gateway_gc_frozen_objects"] > 10_000  # serve froze its start-up heap (issue 18's p99)
    finally:
        for sock in idle:
            sock.close()
        output = served.stop()
    assert "Too many open files" not in output
    assert "out of system resource" not in output
    assert ctl(data_dir, "audit", "verify")["ok"] is True


def _ready_over_tls(served: Served, context: ssl.SSLContext) -> bool:
    if served.proc.poll() is not None:
        raise AssertionError(f"gatewayctl serve exited {served.proc.returncode}: {served.output()}")
    try:
        return https(served.port, context, "/readyz")[0] == 200
    except OSError:
        return False


def test_over_tls_a_handshake_that_never_comes_and_half_a_request_are_closed(tmp_path: Path) -> None:
    data = init(tmp_path / "tls")
    pki = pki_in(data)
    with (data / "gateway.toml").open("a") as config:
        config.write('\n[tls]\ncert_file = "pki/gateway.crt"\nkey_file = "pki/gateway.key"\n')
    served = start_serve(data, env={"GATEWAY_SERVER_HEADER_TIMEOUT": "1"}, ready=False)
    try:
        context = client_context(pki)
        wait_until(lambda: _ready_over_tls(served, context), "serve answering /readyz over TLS")
        with _connect(served) as silent:  # no ClientHello: asyncio alone would wait 60 s
            assert _until_closed(silent) == b""
        with _connect(served) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /heal")
            assert _until_closed(tls) == b""
    finally:
        served.stop()


PIPELINED = b"GET /openapi.json HTTP/1.1\r\nHost: gw\r\n\r\n" * 400  # megabytes of answers, none of them read


def _non_reader(served: Served) -> socket.socket:
    """A connection that pipelines 400 requests and never reads: a small receive window, so the server's
    writes back up at once. Returns once the server has parsed the requests and begun answering."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: fixes the window
    sock.settimeout(EVENT_WITHIN)
    sock.connect(("127.0.0.1", served.port))
    sock.sendall(PIPELINED)
    readable, _, _ = select.select([sock], [], [], EVENT_WITHIN)  # the first answer's bytes: requests queued
    assert readable, "the server never began answering"
    return sock


def _until_closed_or_reset(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_a_pipelining_peer_that_never_reads_is_closed_at_the_send_deadline(data_dir: Path) -> None:
    # Every other bound far away: only the send deadline can close it.
    served = _serve(data_dir, header_timeout="300", keepalive_timeout="600", send_timeout="1")
    try:
        with _non_reader(served) as sock:
            wait_until(
                lambda: _metrics(served).get('gateway_connections_closed_total{reason="send_timeout"}', 0) >= 1,
                "the non-reading connection closed for send_timeout",
            )
            answers = _until_closed_or_reset(sock).count(b"HTTP/1.1 200 ")
            assert answers < 400  # aborted: the answers it never read were dropped, not flushed
        assert http_json(served.base + "/readyz") == (200, {"status": "ready"})
    finally:
        served.stop()


def test_peers_that_never_read_make_room_at_the_cap_for_health_and_issuance(data_dir: Path, token: str) -> None:
    # The send deadline far away: only the cap's choice of whom to close can let the health check in.
    served = _serve(data_dir, header_timeout="300", keepalive_timeout="600", send_timeout="600", max_connections="4")
    stuck: list[socket.socket] = []
    try:
        stuck.extend(_non_reader(served) for _ in range(4))  # every slot held by a connection mid-request
        assert http_json(served.base + "/readyz") == (200, {"status": "ready"})
        stuck.append(_non_reader(served))  # the slot /readyz took from a non-reader: taken again
        request = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
        status, body = http_json(served.base + "/v1/sign", "POST", request, {"Authorization": f"Bearer {token}"})
        assert status == 200, body
        metrics = _metrics(served)  # three non-readers left and this scrape: under the cap
        assert metrics['gateway_connections_closed_total{reason="at_cap"}'] == 2  # a non-reader for each
        assert 'gateway_connections_closed_total{reason="refused"}' not in metrics
    finally:
        for sock in stuck:
            sock.close()
        served.stop()
