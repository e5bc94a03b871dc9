"""kill -9 under issuance load: every URL a client received has its audit record after restart.

Issue 18 keeps decision 1: no URL leaves before its audit record is durable (fsync'd). The raw technical log
and redemptions may trail by a second (docs/audit.md, "Loss window"); the issuance record may not. Clients
issue URLs from several threads while the real ``gatewayctl serve`` is killed with SIGKILL mid-stream; the
restarted gateway's log must hold the ``url:issued`` record of each URL any client got (by its issuance id
and its URL's digest: within a cache window many issuances share one URL), and verify.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.processes import ctl, init, serving, start_serve

pytestmark = pytest.mark.e2e
CLIENTS = 4
KILL_AFTER = 150  # URLs received before the kill: the load is well under way


def _issue_until_refused(port: int, token: str, received: list[tuple[str, str]], enough: threading.Event) -> None:
    body = json.dumps({"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while True:
            conn.request("POST", "/v1/sign", body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status == 200:
                answer = json.loads(data)
                received.append((answer["issuance_id"], answer["url"]))  # list.append is atomic under the GIL
                if len(received) >= KILL_AFTER:
                    enough.set()
    except (OSError, http.client.HTTPException):
        return  # the server died mid-request: that URL was never received
    finally:
        conn.close()


def test_kill_9_under_issuance_load_loses_no_audit_record_of_a_received_url(tmp_path: Path) -> None:
    data_dir = init(tmp_path / "gw")
    added = ctl(data_dir, "principals", "add", "web", "--perm", "sign", "--perm", "sign:on-behalf")
    ctl(data_dir, "keys", "create", "--principal", "web")
    ctl(data_dir, "media", "put", "m1", "--owner", "alice", "--workspace", "w1", "--video", "/v/m1/index.m3u8")
    token = ctl(data_dir, "token", "--credential", added["credential_file"])["token"]
    served = start_serve(data_dir)
    received: list[tuple[str, str]] = []
    enough = threading.Event()
    clients = [threading.Thread(target=_issue_until_refused, args=(served.port, token, received, enough))
               for _ in range(CLIENTS)]  # fmt: skip
    for client in clients:
        client.start()
    try:
        assert enough.wait(120), f"only {len(received)} URLs issued: {served.output()[-2000:]}"
    finally:
        served.stop(signal.SIGKILL)
    for client in clients:
        client.join()
    got = {(issuance, hashlib.sha256(url.encode()).hexdigest()) for issuance, url in received}
    assert len(got) == len(received) >= KILL_AFTER
    with serving(data_dir):  # the restarted gateway opens the same database after the crash
        conn = sqlite3.connect(data_dir / "gateway.db")
        rows = conn.execute("SELECT detail, url_sha256 FROM audit WHERE event = 'url:issued'").fetchall()
        conn.close()
    logged = {(json.loads(detail)["issuance_id"], digest) for detail, digest in rows}
    assert got - logged == set()
    assert ctl(data_dir, "audit", "verify")["ok"] is True
