"""The edge's state zone never evicts: a state update that does not fit is refused whole (deploy/nginx/lua).

nginx's shared dictionaries make room by evicting the least recently used entries (``set``), unless written with
``safe_set``. An evicted key or principal would be an entry the edge no longer knows about while it believes
its state current: so feed.lua writes with ``safe_set`` and a write that does not fit marks the state full
(every request denied). The end-to-end tests in test_nginx_edge.py fill zones so small that even eviction
cannot make room; this one feeds entries of one size, where eviction would succeed, so that only ``safe_set``
keeps the update from being applied. Real nginx with Debian's lua module; the feed is a stand-in that
serves the documents GET /v1/edge/state serves (docs/edge.md), which the edge's Lua reads alone.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from examples.demo import stack as local
from tests.edge_stack import require_lua
from tests.nginx_server import running_nginx

LUA_DIR = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "lua"
PUBLIC = "A" * 43  # a 32-byte Ed25519 public key, base64url: every key entry the same size


def _key(number: int) -> dict[str, Any]:
    return {"kid": f"gwk_{number:020d}", "principal": "svc", "algorithm": "ed25519", "public": PUBLIC,
            "not_after": None, "revoked": False}  # fmt: skip


class Feed:
    """The documents the edge is served, newest last; a poll at the newest version waits a little, like the
    gateway's long poll, and answers "nothing new"."""

    def __init__(self, first: dict[str, Any]) -> None:
        self.documents = [first]
        self.lock = threading.Lock()

    def publish(self, document: dict[str, Any]) -> None:
        with self.lock:
            self.documents.append(document)

    def answer(self, since: int) -> dict[str, Any]:
        with self.lock:
            newest = self.documents[-1]
        if since == 0:
            return self.documents[0] if len(self.documents) == 1 else {**newest, "full": True}
        if since >= newest["version"]:
            time.sleep(0.05)
            return {"version": newest["version"], "full": False, "age": 0, "max_expiry_ahead": 3600}
        return newest


@contextmanager
def feed_server(feed: Feed) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            since = int(parse_qs(urlsplit(self.path).query).get("since", ["0"])[0])
            body = json.dumps(feed.answer(since)).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # nginx stopped in the middle of a long poll

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def edge_nginx(work: Path, feed_port: int, zone: str) -> Iterator[str]:
    """nginx with the edge's Lua and shared zones, fed from ``feed_port``; yields the status URL."""
    http_block = f"""
    lua_package_path "{LUA_DIR}/?.lua;;";
    lua_shared_dict media_gateway_edge_state {zone};
    lua_shared_dict media_gateway_edge_decisions 1m;
    lua_shared_dict media_gateway_edge_status 1m;
    init_worker_by_lua_block {{
        require("media_gateway.edge").init_worker({{
            feed_url = "http://127.0.0.1:{feed_port}/state", stale_after = 60, wait = 0.05, retry_every = 0.02,
        }})
    }}
"""
    server_block = '        location = /status { content_by_lua_block { require("media_gateway.edge").status() } }'
    with running_nginx(work, server_block, http_block, modules=local.lua_modules()) as base:
        yield f"{base}/status"


def _status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return None  # not listening yet


def _wait_for(url: str, what: str, done: Any) -> dict[str, Any]:
    """Poll the edge's status until ``done(status)``: the event, not a length of time, is what is waited for
    (the deadline only turns a hang into a failure that says what never happened)."""
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        status = _status(url)
        if status is not None and done(status):
            return status
        time.sleep(0.02)
    pytest.fail(f"the edge never reached {what}: last status {status}")


def test_an_update_that_would_need_an_eviction_is_refused_whole(tmp_path: Path) -> None:
    require_lua()
    first = {"version": 1, "full": True, "age": 0, "max_expiry_ahead": 3600, "principals": [],
             "keys": [_key(i) for i in range(100)]}  # fmt: skip
    feed = Feed(first)
    with feed_server(feed) as port, edge_nginx(tmp_path, port, "64k") as status_url:
        loaded = _wait_for(status_url, "the first state", lambda s: s.get("version") == 1)
        assert (loaded["full"], loaded["entries"], loaded["state_full_errors"]) == (False, 100, 0)
        # Far more keys of the same size than the zone has left: set would evict the oldest ones and succeed.
        entry = (loaded["state_capacity_bytes"] - loaded["state_free_bytes"]) // 100
        more = 3 * loaded["state_capacity_bytes"] // max(entry, 1)
        feed.publish({"version": 2, "full": False, "age": 0, "max_expiry_ahead": 3600, "principals": [],
                      "keys": [_key(1000 + i) for i in range(more)]})  # fmt: skip
        refused = _wait_for(
            status_url, "a refused update", lambda s: s["state_full_errors"] > 0 or s.get("version") == 2
        )
        assert (refused["full"], refused["fresh"], refused["version"]) == (True, False, 1)
    assert "media-gateway edge state zone is full (no memory)" in (tmp_path / "logs" / "error.log").read_text()
