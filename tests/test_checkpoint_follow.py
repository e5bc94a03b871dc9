"""``serve --no-checkpoints`` with ``audit checkpoint --follow`` beside it: the export work leaves the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_e2e_serve import GATEWAYCTL, _free_port, _wait_ready

pytestmark = pytest.mark.e2e


def _checkpoints(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "audit-export" / "checkpoints").glob("*.json"))


def test_checkpoints_come_from_the_follower_not_the_server(tmp_path: Path) -> None:
    subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(tmp_path)], check=True, capture_output=True)
    env = {**os.environ, "GATEWAY_AUDIT_CHECKPOINT_EVERY_SECONDS": "1"}
    port = _free_port()
    argv = [*GATEWAYCTL, "serve", "--data-dir", str(tmp_path), "--port", str(port), "--no-checkpoints"]
    server = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", server)
        time.sleep(2.5)
        assert _checkpoints(tmp_path) == []  # the server writes none
        follower = subprocess.Popen([*GATEWAYCTL, "audit", "checkpoint", "--follow", "--data-dir", str(tmp_path)],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 30
        while len(_checkpoints(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=15)
        assert follower.returncode == 0, err
        assert out.decode() == "writing checkpoints until stopped\n"
        assert len(_checkpoints(tmp_path)) >= 2
    finally:
        server.terminate()
        server.communicate(timeout=15)
    done = subprocess.run([*GATEWAYCTL, "audit", "verify", "--data-dir", str(tmp_path), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True
