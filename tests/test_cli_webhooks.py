"""gatewayctl webhooks list | retry | deliver: the outbox by hand, where no gateway is serving."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.main import main as gatewayctl
from tests.support import init_data_dir
from tests.webhook_receiver import Receiver, configure_webhook

SECRET = b"whsec_cli_0123456789abcdef012345"


def _run(capsys: pytest.CaptureFixture[str], data: Path, *argv: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = gatewayctl([*argv, "--data-dir", str(data), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


async def test_a_dead_delivery_is_retried_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receiver = await Receiver(SECRET).start()
    try:
        await asyncio.to_thread(init_data_dir, tmp_path)
        configure_webhook(tmp_path, receiver.url, SECRET, max_attempts=1)

        async def ctl(*argv: str) -> tuple[int, Any]:
            return await asyncio.to_thread(_run, capsys, tmp_path, *argv)

        assert (await ctl("webhooks", "deliver"))[1] == {"queued": 0, "attempts": []}  # sets where events start
        await ctl("principals", "add", "web")
        assert (await ctl("principals", "disable", "web"))[0] == 0
        receiver.fail_next = 1
        code, round_one = await ctl("webhooks", "deliver")
        assert code == 0 and round_one["queued"] == 1
        [attempt] = round_one["attempts"]
        assert (attempt["endpoint"], attempt["ok"], attempt["error"]) == ("backend", False, "HTTP 500")
        [dead] = (await ctl("webhooks", "list", "--state", "dead"))[1]
        assert (dead["event"], dead["state"], dead["attempts"], dead["last_error"]) == (
            "principal.disabled", "dead", 1, "HTTP 500",
        )  # fmt: skip
        assert (await ctl("webhooks", "retry", str(dead["id"])))[1] == {"id": dead["id"], "state": "pending"}
        assert (await ctl("webhooks", "retry", str(dead["id"])))[0] == 4  # not dead any more: a conflict
        code, round_two = await ctl("webhooks", "deliver")
        assert [a["ok"] for a in round_two["attempts"]] == [True]
        [event] = receiver.of_type("principal.disabled")
        assert event["id"] == dead["event_id"] and event["data"]["principal_id"] == "web"
        assert (await ctl("webhooks", "list", "--limit", "0"))[0] == 2
    finally:
        await receiver.stop()
