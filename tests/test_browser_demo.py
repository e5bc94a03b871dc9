"""A real player in a real browser: headless Chromium opens the demo (``python -m examples.demo``, a real
process running nginx, the gateway and an origin), shows the thumbnails through page URLs, and plays the HLS
stream through nginx with a path token that lives ``TOKEN_TTL`` seconds: ``deploy/player/gateway-player.js``
renews it from the page URL before it expires, so the stream plays for more than three token lifetimes
without a stall; then ``gatewayctl keys revoke`` of the key that signed the current token stops it at the
next segment.

Screenshots go to the test's directory; with ``GATEWAY_DEMO_SCREENSHOT=docs/demo-player.png`` the last
one is also written there (the README's picture).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.demo.app import HLS_JS
from examples.demo.stack import Layout, gatewayctl
from tests import servicelogs
from tests.cdp import chromium, chromium_binary
from tests.conftest import require_service
from tests.edge_stack import require_lua
from tests.nginx_server import nginx_binary
from tests.nginx_site import require_tool

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parent.parent
THUMBNAILS_SHOWN = (
    "document.images.length === 3 && [...document.images].every(i => i.complete && i.naturalWidth === 320)"
)
PLAYING = (
    "window.demo && window.demo.loaded.length >= 5 && document.getElementById('player').currentTime > 3"
    " && document.getElementById('player').videoWidth === 640"
)
TOKEN_TTL = 6  # seconds each signed URL lives (the demo's --token-ttl; no cache window, so exactly that)
SEGMENT = 1.0  # seconds of media per segment (examples/demo/media.py): no stall may last longer


def _ready_line(log: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("demo-ready "):
                return line.removeprefix("demo-ready ")
        if proc.poll() is not None:
            raise RuntimeError(f"the demo exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    raise RuntimeError(f"the demo was not ready within {timeout} s:\n{log.read_text()}")


def _install_hls_js() -> None:
    """hls.js from the pinned lock file (examples/demo/package-lock.json), as README's demo command does:
    a newcomer's test run needs nothing installed by hand beyond npm itself."""
    if HLS_JS.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        require_service("npm, to install hls.js from examples/demo/package-lock.json (apt-get install -y npm)")
    assert npm is not None
    demo_dir = ROOT / "examples" / "demo"
    with (demo_dir / ".npm-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker installs; another waits and finds it installed
        if not HLS_JS.exists():
            done = subprocess.run([npm, "ci", "--prefix", str(demo_dir), "--no-audit", "--no-fund"],
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            if done.returncode != 0 or not HLS_JS.exists():
                require_service(f"hls.js: npm ci --prefix examples/demo failed: {done.stderr.strip()[-500:]}")


@pytest.fixture
def demo(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """``python -m examples.demo``; with the (indirect) parameter ``"edge"``, in edge mode (``--edge``)."""
    edge = getattr(request, "param", None) == "edge"
    if edge:
        require_lua()
    chromium_binary()
    nginx_binary()
    require_tool("ffmpeg", "apt-get install -y ffmpeg")
    _install_hls_js()
    log = tmp_path / "demo.log"
    servicelogs.watch("demo (python -m examples.demo)", log)
    work = Layout(tmp_path / "demo")
    servicelogs.watch("gateway (the demo's)", work.gateway_log)
    servicelogs.watch("nginx (the demo's)", work.nginx_dir / "logs" / "error.log")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "examples.demo", "--workdir", str(work.root),
                                 "--token-ttl", str(TOKEN_TTL), "--cache-window", "0", *(["--edge"] if edge else [])],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield json.loads(_ready_line(log, proc))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_the_player_outlives_its_tokens_without_a_stall_and_stops_at_the_next_segment_once_revoked(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    async with chromium(tmp_path / "profile") as page:
        await page.navigate(demo["url"])
        await page.wait_for(THUMBNAILS_SHOWN)  # three <img src="/m/ID/thumbnail">: 302, signed URL, nginx, origin
        await page.wait_for(PLAYING, timeout=60)  # hls.js decoded several verified segments
        played = 3 * TOKEN_TTL + 2
        await page.wait_for(f"document.getElementById('player').currentTime >= {played}", timeout=played * 4)
        state = await page.evaluate(
            "({renewals: demo.renewals, failures: demo.renewFailures, stalls: demo.stalls, times: demo.times,"
            " refused: demo.refused, loaded: demo.loaded, lifetime: demo.lifetime, kid: demo.kid,"
            " current: document.getElementById('player').currentTime})"
        )
        await page.screenshot(tmp_path / "renewed.png")

        gatewayctl(Path(demo["data_dir"]), "keys", "revoke", state["kid"], "--reason", "browser test")
        refused = await page.wait_for("window.demo.refused[0]", timeout=30)
        loaded = await page.evaluate("window.demo.loaded")
        await page.wait_for("document.getElementById('status').className === 'refused'")
        await page.screenshot(tmp_path / "revoked.png")

    print(  # the figures, for the record (pytest -s)
        f"\nplayback: token lifetime {state['lifetime']} s, played {state['current']:.1f} s, "
        f"{len(state['renewals'])} renewals, stalls {state['stalls']}, segments {len(state['loaded'])}"
    )
    assert state["lifetime"] == TOKEN_TTL
    assert state["refused"] == [] and state["failures"] == 0
    # Renewed before each token ran out: a new token at least every lifetime, each one different.
    assert len(state["renewals"]) >= 3
    assert len({renewal["segment"] for renewal in state["renewals"]}) == len(state["renewals"])
    assert all(renewal["exp"] - renewal["iat"] == TOKEN_TTL for renewal in state["renewals"])
    # The video kept moving: currentTime never went back, and no wait for data lasted a segment.
    positions = [position for _, position in state["times"]]
    assert positions == sorted(positions) and positions[-1] >= 3 * TOKEN_TTL
    assert all(stall < SEGMENT for stall in state["stalls"]), state["stalls"]
    assert refused["code"] == 403
    assert refused["sn"] == max(loaded) + 1  # the very next segment, once the key was revoked
    assert sorted(loaded) == list(range(len(loaded)))  # every segment before it played, none skipped
    target = os.environ.get("GATEWAY_DEMO_SCREENSHOT")
    if target:
        shutil.copyfile(tmp_path / "revoked.png", ROOT / target)


@pytest.mark.parametrize("demo", ["edge"], indirect=True)
async def test_in_edge_mode_nginx_checks_the_segments_and_keys_revoke_stops_the_player_at_the_next_one(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    assert demo["mode"] == "edge"
    async with chromium(tmp_path / "profile") as page:
        await page.navigate(demo["url"])
        await page.wait_for(PLAYING, timeout=60)
        # The first token is the demo's own; every renewal is signed by the page URL's key. Revoke that one,
        # once the player holds a renewed token (read before it, the kid is the one no later segment uses).
        kid = await page.wait_for("demo.renewals.length >= 1 && demo.renewals[0].kid", timeout=4 * TOKEN_TTL)
        before = _edge_status(demo)
        assert before["allowed"] >= 3 and before["fresh"] is True  # segments allowed by nginx itself
        gatewayctl(Path(demo["data_dir"]), "keys", "revoke", kid, "--reason", "browser test, edge mode")
        refused = await page.wait_for("window.demo.refused[0]", timeout=30)
        loaded = await page.evaluate("window.demo.loaded")
        await page.screenshot(tmp_path / "revoked-edge.png")
    assert refused["code"] == 403
    assert refused["sn"] == max(loaded) + 1  # the very next segment
    assert _edge_status(demo)["denied_by_reason"]["key-revoked"] >= 1  # refused by nginx, not by the gateway


def _edge_status(demo: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(demo["edge_status"], timeout=5) as response:
        return dict(json.loads(response.read()))
