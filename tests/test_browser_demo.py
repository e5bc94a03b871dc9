"""A real player in a real browser: headless Chromium opens the demo (``python -m examples.demo``, a real
process running nginx, the gateway and an origin), shows the thumbnails through page URLs, plays the HLS
stream through nginx with a prefix token, and stops at the next segment once ``gatewayctl keys revoke``
has revoked the key that signed it.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.demo.app import HLS_JS
from examples.demo.stack import Layout, gatewayctl
from tests import servicelogs
from tests.cdp import chromium, chromium_binary
from tests.conftest import require_service
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
def demo(tmp_path: Path) -> Iterator[dict[str, Any]]:
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
        proc = subprocess.Popen([sys.executable, "-m", "examples.demo", "--workdir", str(work.root)],
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


async def test_the_player_plays_through_nginx_and_stops_at_the_next_segment_once_the_key_is_revoked(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    async with chromium(tmp_path / "profile") as page:
        await page.navigate(demo["url"])
        await page.wait_for(THUMBNAILS_SHOWN)  # three <img src="/m/ID/thumbnail">: 302, signed URL, nginx, origin
        await page.wait_for(PLAYING, timeout=60)  # hls.js decoded several verified segments
        await page.screenshot(tmp_path / "playing.png")
        assert await page.evaluate("window.demo.refused") == []

        gatewayctl(Path(demo["data_dir"]), "keys", "revoke", demo["kid"], "--reason", "browser test")
        refused = await page.wait_for("window.demo.refused[0]", timeout=30)
        loaded = await page.evaluate("window.demo.loaded")
        await page.wait_for("document.getElementById('status').className === 'refused'")
        await page.screenshot(tmp_path / "revoked.png")

    assert refused["code"] == 403
    assert refused["sn"] == max(loaded) + 1  # the very next segment, once the key was revoked
    assert sorted(loaded) == list(range(len(loaded)))  # every segment before it played, none skipped
    target = os.environ.get("GATEWAY_DEMO_SCREENSHOT")
    if target:
        shutil.copyfile(tmp_path / "revoked.png", ROOT / target)
