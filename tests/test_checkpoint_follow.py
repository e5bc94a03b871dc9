"""``serve --no-checkpoints`` with ``audit checkpoint --follow`` beside it: the export work leaves the server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import servicelogs
from tests.processes import GATEWAYCTL, ctl, init, serving, wait_until

pytestmark = pytest.mark.e2e


def _checkpoints(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "audit-export" / "checkpoints").glob("*.json"))


def test_checkpoints_come_from_the_follower_not_the_server(tmp_path: Path) -> None:
    data = init(tmp_path / "gw")
    env = {"GATEWAY_AUDIT_CHECKPOINT_EVERY_SECONDS": "1"}
    with serving(data, "--no-checkpoints", env=env) as server:
        # A serving gateway writes a checkpoint at once when one is due (none yet) and every second after: the
        # proof that this one writes none is that time passes without one (two of its periods and a half).
        time.sleep(2.5)
        assert _checkpoints(data) == [], server.output()
        follower_log = tmp_path / "follower.log"
        with follower_log.open("ab") as log:
            follower = subprocess.Popen([*GATEWAYCTL, "audit", "checkpoint", "--follow", "--data-dir", str(data)],
                                        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        servicelogs.watch("checkpoint follower", follower_log)
        try:
            wait_until(lambda: len(_checkpoints(data)) >= 2, "two checkpoints from the follower")
        finally:
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=15)
        assert follower.returncode == 0, follower_log.read_text()
        assert follower_log.read_text() == "writing checkpoints until stopped\n"
    assert ctl(data, "audit", "verify")["ok"] is True
