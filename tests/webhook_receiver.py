"""A webhook receiver on loopback, written as docs/operations.md tells receivers to write one.

It checks ``Gateway-Signature`` itself (no gateway code): the ``t`` timestamp
within five minutes of its clock, and a ``v1`` equal to the hex HMAC-SHA256
of ``t``, a dot and the raw body under the shared secret, compared in
constant time. It can be told to fail the next N deliveries (HTTP 500), and
it records every delivery it accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

TOLERANCE = 300


def verify_signature(header: str, body: bytes, secret: bytes, now: float) -> bool:
    """The receiver's check, exactly as docs/operations.md shows it."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for name, value in fields if name == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or abs(now - int(timestamps[0])) > TOLERANCE:
        return False
    expected = hmac.new(secret, timestamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, value in fields if name == "v1")


@dataclass
class Receiver:
    secret: bytes
    port: int = 0
    fail_next: int = 0
    clock: Callable[[], float] = time.time
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, event id) answered with an error
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("Gateway-Event-Id", "")
        if not verify_signature(request.headers.get("Gateway-Signature", ""), body, self.secret, self.clock()):
            self.refused.append((401, event_id))
            return web.Response(status=401)
        if self.fail_next:
            self.fail_next -= 1
            self.refused.append((500, event_id))
            return web.Response(status=500)
        event = json.loads(body)
        assert event["id"] == event_id and event["type"] == request.headers["Gateway-Event"]
        self.accepted.append(event)
        return web.Response(status=204)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.accepted if e["type"] == event_type]

    def duplicates(self) -> list[str]:
        """Event ids accepted more than once."""
        return [event_id for event_id, n in Counter(e["id"] for e in self.accepted).items() if n > 1]

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.of_type(event_type)) < count:
            assert time.monotonic() < deadline, f"no {event_type} within {timeout} s: {self.accepted} {self.refused}"
            await asyncio.sleep(0.05)
        return self.of_type(event_type)


def configure_webhook(data_dir: Path, url: str, secret: bytes, **settings: float | int) -> None:
    """Append a [webhooks.backend] endpoint (and [webhooks] settings) to the data directory's gateway.toml."""
    secret_file = data_dir / "keys" / "webhook-backend.secret"
    secret_file.write_bytes(secret)
    secret_file.chmod(0o600)
    lines = ["", "[webhooks]", *(f"{name} = {value}" for name, value in settings.items())]
    lines += ["", "[webhooks.backend]", f'url = "{url}"', 'secret_file = "keys/webhook-backend.secret"', ""]
    with (data_dir / "gateway.toml").open("a") as toml:
        toml.write("\n".join(lines))
