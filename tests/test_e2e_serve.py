"""One end-to-end run of the real ``gatewayctl serve`` process over a socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import ctl as _ctl
from tests.processes import http_json as _call
from tests.processes import init, serving, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    data_dir = init(tmp_path / "gw")
    with serving(data_dir) as served:
        yield data_dir, served.base


def test_sign_verify_revoke_against_the_real_process(server: tuple[Path, str]) -> None:
    data_dir, base = server
    added = _ctl(data_dir, "principals", "add", "web", "--perm", "sign", "--perm", "sign:on-behalf")
    key = _ctl(data_dir, "keys", "create", "--principal", "web")
    _ctl(data_dir, "media", "put", "m1", "--owner", "alice", "--workspace", "w1", "--video", "/v/m1/index.m3u8")
    token = _ctl(data_dir, "token", "--credential", added["credential_file"])["token"]
    request = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    status, body = _call(base + "/v1/sign", "POST", request,
                         {"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 200, body
    assert body["kid"] == key["kid"]
    uri = body["url"].removeprefix("https://cdn.example.com")
    assert _call(base + "/v1/verify", headers={"X-Original-URI": uri})[0] == 200
    # The redemption is written behind (within a second, docs/audit.md "Loss window"): wait for it.
    wait_until(lambda: _ctl(data_dir, "audit", "search", "--event", "url:redeemed"), "the redemption's record")
    _ctl(data_dir, "keys", "revoke", key["kid"], "--reason", "e2e")
    assert _call(base + "/v1/verify", headers={"X-Original-URI": uri})[0] == 403
    events = [r["event"] for r in _ctl(data_dir, "audit", "tail", "-n", "4")]
    assert events == ["media:put", "url:issued", "url:redeemed", "key:revoked"]
