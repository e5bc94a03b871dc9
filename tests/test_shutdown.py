"""Graceful shutdown of the real ``gatewayctl serve``: SIGTERM while a request is in flight.

The request is held in flight where it matters: its audit group is waiting
to commit (the test holds a lock on PostgreSQL's audit table). The listener
closes at once (a new connection is refused), the request completes with its
answer once the lock is released, its audit record is committed, and the
last checkpoint, written after it, seals it; the process exits 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway.config import load_config
from gateway.store import open_store
from gateway.store.base import AuditQuery
from tests.processes import GATEWAYCTL, init, start_serve
from tests.processes import ctl as _ctl

pytestmark = pytest.mark.e2e


@pytest.fixture
def data(tmp_path: Path, postgres_url: str) -> Iterator[Path]:
    settings = [
        f'[database]\nurl = "{postgres_url}"',
        "[audit]\ncheckpoint_every_records = 1000000\ncheckpoint_every_seconds = 86400",  # only the last one
        '[viewer]\nissuer = "urn:gateway:dev-idp"\naudience = "viewers"\npublic_key_file = "keys/dev-idp.pub"',
    ]
    (tmp_path / "gateway.toml").write_text("\n".join(settings) + "\n")  # init keeps it
    yield init(tmp_path)


def _request_head(port: int, token: str, length: int) -> bytes:
    head = f"POST /v1/sign HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
    return (head + f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


async def _commit_waits_on_the_lock(lock: asyncpg.Connection) -> bool:
    waiting = await lock.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'audit'::regclass")
    return bool(waiting)


async def _as_awaitable(value: bool) -> bool:
    return value


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds (the event), failing after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout} s") from None


async def _log_state(data: Path) -> tuple[int, int, list[str]]:
    """(records in the log, records the newest checkpoint seals, issuance ids logged)."""
    store = await open_store(load_config(data, environ={}))
    try:
        size = (await store.audit.frontier()).size
        checkpoints = await store.audit.checkpoints()
        issued = await store.audit.search(AuditQuery(event="url:issued"))
    finally:
        await store.close()
    return size, checkpoints[-1].tree_size if checkpoints else 0, [r.detail["issuance_id"] for r in issued]


async def test_sigterm_finishes_the_request_in_flight_then_commits_and_checkpoints(
    data: Path, postgres_url: str
) -> None:
    added = _ctl(data, "principals", "add", "web", "--perm", "sign", "--perm", "sign:on-behalf")
    _ctl(data, "keys", "create", "--principal", "web")
    _ctl(data, "media", "put", "m1", "--owner", "alice", "--workspace", "w1", "--video", "/v/m1/index.m3u8")
    token = _ctl(data, "token", "--credential", added["credential_file"])["token"]
    served = start_serve(data)
    port, proc = served.port, served.proc
    try:
        body = json.dumps({"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}).encode()
        lock = await asyncpg.connect(postgres_url)
        holding = lock.transaction()
        await holding.start()
        await lock.execute("LOCK TABLE audit IN EXCLUSIVE MODE")  # the audit group cannot commit yet
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        sock.sendall(_request_head(port, token, len(body)) + body)
        await _until(lambda: _commit_waits_on_the_lock(lock), "the request's audit commit waits on the lock")
        proc.send_signal(signal.SIGTERM)
        await _until(lambda: _as_awaitable("stopping: no new connections" in served.output()), "serve stopping")
        await _until(lambda: _as_awaitable(_refused(port)), "no new connections after SIGTERM")
        assert proc.poll() is None, "exited with a request in flight"
        await holding.rollback()  # the commit goes ahead
        await lock.close()
        status, answer = await asyncio.to_thread(_read_response, sock)
        sock.close()
        assert status == 200, answer
        proc.wait(timeout=30)
        out = served.output()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopping: no new connections" in out
    size, sealed, issued = await _log_state(data)
    assert issued == [answer["issuance_id"]]  # the in-flight request's record was committed
    assert sealed == size  # and the last checkpoint, written after it, seals every record
    verify = subprocess.run([*GATEWAYCTL, "audit", "verify", "--data-dir", str(data)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
