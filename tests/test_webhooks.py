"""Every alert path end to end: the change or detection, the durable outbox, a signed delivery to a real
receiver on loopback (which checks the signature as docs/operations.md says), retries with backoff, the
audit record of each attempt, and no loss across a restart of a real ``gatewayctl serve``."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.alerts import webhooks
from gateway.audit.records import AuditRecord
from gateway.cli.main import main as gatewayctl
from gateway.config import Config, load_config
from gateway.model import Permission, PrincipalKind, Visibility
from gateway.services import Services
from gateway.store import open_store
from gateway.store.base import AuditQuery
from tests.processes import GATEWAYCTL, Served, free_port, start_serve
from tests.support import ADMIN, Clock, World, init_data_dir
from tests.webhook_receiver import Receiver, configure_webhook, verify_signature

SECRET = b"whsec_test_0123456789abcdef0123"
BACKOFF = 5  # webhooks.backoff: the first retry 5 s after a failure, then 10 s, 20 s, ...


@pytest.fixture
async def receiver(clock: Clock) -> AsyncIterator[Receiver]:
    started = await Receiver(SECRET, clock=clock).start()
    yield started
    await started.stop()


@dataclass
class RunningClock(Clock):
    """The wall clock, moved forward by ``advance``: CLI commands in a test write with the real one."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> Clock:
    return RunningClock()


@pytest.fixture
def config(tmp_path: Path, receiver: Receiver) -> Config:
    init_data_dir(tmp_path)
    configure_webhook(tmp_path, receiver.url, SECRET, backoff=BACKOFF)
    with (tmp_path / "gateway.toml").open("a") as toml:  # unusual use: no learning period; spikes from 5/minute
        toml.write("\n[alerts]\nlearning_days = 0\nrate_floor = 5\n")
    return load_config(tmp_path, environ={})


@pytest.fixture
async def web(world: World, client: TestClient) -> World:
    """A signing backend, an item of alice's, and the app serving (its outbox and detection running)."""
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1", owner="alice")
    return world


async def _audited(services: Services, event: str) -> list[AuditRecord]:
    return await services.store.audit.search(AuditQuery(event=event))


async def _sign(client: TestClient, world: World) -> dict[str, Any]:
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    response = await client.post("/v1/sign", json=body, headers=world.auth("web"))
    assert response.status == 200
    return dict(await response.json())


def _attempts(records: list[AuditRecord]) -> list[tuple[str, str, int, int | None]]:
    return [(r.event.value, r.detail["event_id"], r.detail["attempt"], r.detail.get("status")) for r in records]


async def _attempt_records(services: Services, event_id: str, count: int = 1) -> list[AuditRecord]:
    """The audited attempts to deliver ``event_id``, once there are ``count`` (each is audited after its answer)."""
    deadline = time.monotonic() + 10
    while len(found := await _attempts_of(services, event_id)) < count:
        assert time.monotonic() < deadline, f"{len(found)} attempt(s) of {event_id} audited"
        await asyncio.sleep(0.05)
    return found


async def _attempts_of(services: Services, event_id: str) -> list[AuditRecord]:
    found = []
    for event in ("webhook:delivered", "webhook:failed", "webhook:abandoned"):
        found += [r for r in await _audited(services, event) if r.detail["event_id"] == event_id]
    return sorted(found, key=lambda r: r.seq or 0)


async def test_key_revoked_is_delivered_signed_and_the_attempt_audited(web: World, receiver: Receiver) -> None:
    kid = (await web.services.store.keys.all("web"))[0].kid
    await web.services.admin.revoke_key(ADMIN, kid, "laptop stolen", web.clock())
    [event] = await receiver.wait_for("key.revoked")
    [revoked] = await _audited(web.services, "key:revoked")
    assert event["id"] == f"evt_{revoked.seq}" and event["audit_seq"] == revoked.seq
    assert event["data"] == {"actor": "test-admin", "kid": kid, "principal_id": "web", "reason": "laptop stolen"}
    [attempt] = await _attempt_records(web.services, event["id"])
    assert _attempts([attempt]) == [("webhook:delivered", event["id"], 1, 204)]
    assert (attempt.actor, attempt.detail["endpoint"], attempt.detail["event"]) == (
        "gateway:webhooks", "backend", "key.revoked",
    )  # fmt: skip


async def test_a_failing_receiver_is_retried_after_the_backoff(web: World, receiver: Receiver) -> None:
    receiver.fail_next = 1
    await web.services.admin.disable_principal(ADMIN, "web", web.clock())
    while not receiver.refused:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # the outbox runs every second: nothing is attempted again before the backoff
    [(status, event_id)] = receiver.refused
    assert status == 500 and receiver.accepted == []
    [failed] = await _attempt_records(web.services, event_id)
    assert _attempts([failed]) == [("webhook:failed", event_id, 1, 500)]
    assert (failed.reason, failed.detail["retry_at"]) == ("HTTP 500", failed.time + BACKOFF)
    web.clock.advance(BACKOFF)
    [event] = await receiver.wait_for("principal.disabled")
    assert (event["id"], event["data"]["principal_id"]) == (event_id, "web")
    assert _attempts(await _attempt_records(web.services, event_id, 2)) == [
        ("webhook:failed", event_id, 1, 500), ("webhook:delivered", event_id, 2, 204),
    ]  # fmt: skip
    [row] = await web.services.store.outbox.entries(None, 10)
    assert (row.state, row.attempts) == ("delivered", 2)


async def test_a_badly_signed_delivery_would_be_refused_by_the_receiver(receiver: Receiver) -> None:
    """The receiver's check is real: a wrong secret, a stale timestamp and a changed body are all refused."""
    body = b'{"id":"evt_1","type":"key.revoked"}'
    now = int(time.time())
    for header, payload in (
        (webhooks.sign([b"not-the-secret-0123456789"], now, body), body),
        (webhooks.sign([SECRET], now - 301, body), body),
        (webhooks.sign([SECRET], now, body), body.replace(b"1", b"2")),
    ):
        assert not receiver_accepts(header, payload)
    assert receiver_accepts(webhooks.sign([b"the-new-secret-0123456789", SECRET], now, body), body)  # rotation


def receiver_accepts(header: str, body: bytes) -> bool:
    return verify_signature(header, body, SECRET, time.time())


async def test_outsider_use_is_detected_audited_and_delivered(
    client: TestClient, web: World, receiver: Receiver
) -> None:
    signed = await _sign(client, web)
    uri = signed["url"].removeprefix("https://cdn.example.com")
    # From the network it was issued to (the test client, 127.0.0.1): no alert. From elsewhere: one.
    assert (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status == 200
    outsider = {"X-Original-URI": uri, "X-Forwarded-For": "203.0.113.5"}  # loopback is a trusted proxy
    assert (await client.get("/v1/verify", headers=outsider)).status == 200
    web.clock.advance(4)  # past the grace in which another replica's issuance to that network would be learnt
    [event] = await receiver.wait_for("alert.outsider_use")
    [alert] = await _audited(web.services, "alert:outsider_use")
    assert (alert.kid, alert.reason, alert.client_ip, alert.actor) == (
        signed["kid"], "outsider-network", "203.0.113.0/24", "gateway:alerts",
    )  # fmt: skip
    assert event["id"] == f"evt_{alert.seq}"
    assert event["data"] == {
        "actor": "gateway:alerts", "kid": signed["kid"], "principal_id": "web", "reason": "outsider-network",
        "network": "203.0.113.0/24", "issued_to": ["127.0.0.0/24"], "expires_at": signed["expires_at"],
    }  # fmt: skip
    assert len(receiver.of_type("alert.outsider_use")) == 1


async def test_an_engineer_signing_from_a_new_network_is_unusual_use(
    client: TestClient, web: World, receiver: Receiver
) -> None:
    await web.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await web.media("e1", owner="eve", visibility=Visibility.PUBLIC)
    body = {"media_id": "e1", "rendition": "video"}
    hour = int(web.clock() // 3600) % 24
    assert (await client.post("/v1/sign", json=body, headers=web.auth("eve"))).status == 200  # learnt: loopback
    elsewhere = {**web.auth("eve"), "X-Forwarded-For": "198.51.100.20"}
    assert (await client.post("/v1/sign", json=body, headers=elsewhere)).status == 200
    [event] = await receiver.wait_for("alert.unusual_use")
    assert event["data"] == {"actor": "gateway:alerts", "kid": (await web.services.store.keys.all("eve"))[0].kid,
                             "principal_id": "eve", "reason": "new-network", "network": "198.51.100.0/24",
                             "hour_utc": hour}  # fmt: skip
    [alert] = await _audited(web.services, "alert:unusual_use")
    assert event["id"] == f"evt_{alert.seq}"


async def test_a_key_issuing_far_above_its_baseline_is_a_rate_spike(
    client: TestClient, web: World, receiver: Receiver
) -> None:
    for _ in range(61):  # an hour of one URL a minute: the baseline
        await _sign(client, web)
        web.clock.advance(60)
    items = [{"media_id": "m1", "rendition": "thumbnail"}] * 20
    batch = {"items": items, "viewer": {"id": "alice"}}
    assert (await client.post("/v1/sign/batch", json=batch, headers=web.auth("web"))).status == 200
    web.clock.advance(60)
    kid = (await _sign(client, web))["kid"]  # the next minute's first issuance closes the busy one
    [event] = await receiver.wait_for("alert.rate_spike")
    assert (event["data"]["kid"], event["data"]["principal_id"], event["data"]["per_minute"]) == (kid, "web", 20)
    assert 0.5 < event["data"]["baseline_per_minute"] < 1.0  # a mean over about an hour, warming up from 0
    [alert] = await _audited(web.services, "alert:rate_spike")
    assert (alert.kid, alert.reason) == (kid, "rate-spike")


async def test_link_revoked_is_delivered(web: World, receiver: Receiver) -> None:
    await web.services.admin.revoke_links(ADMIN, "m1", "posted on a forum", web.clock())
    [event] = await receiver.wait_for("link.revoked")
    assert event["data"] == {"actor": "test-admin", "media_id": "m1", "reason": "posted on a forum"}


async def test_incident_report_and_notify_name_subjects_the_receiver_can_resolve(
    client: TestClient, web: World, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    kid = (await _sign(client, web))["kid"]
    data_dir = str(web.services.config.data_dir)
    assert await asyncio.to_thread(gatewayctl, ["incident", "report", "--kid", kid, "--data-dir", data_dir]) == 0
    [reported] = await receiver.wait_for("incident.reported")
    ref = web.services.audit_log.ref("alice")
    assert reported["data"]["affected_subjects"] == [ref]
    assert (reported["data"]["kid"], reported["data"]["issuances"], reported["data"]["resolve"]) == (
        kid, 1, "POST /v1/subjects/resolve",
    )  # fmt: skip
    assert "alice" not in json.dumps(reported)  # by pseudonym only

    # The receiver (the backend, which may name viewers) turns the pseudonyms back into its user ids.
    response = await client.post("/v1/subjects/resolve", json={"subjects": [ref, "sub_" + "0" * 32]},
                                 headers=web.auth("web"))  # fmt: skip
    assert response.status == 200
    assert await response.json() == {"subjects": {ref: "alice", "sub_" + "0" * 32: None}}
    [resolved] = await _audited(web.services, "subject:resolved")
    assert (resolved.actor, resolved.detail) == ("web", {"requested": 2, "resolved": 1})

    capsys.readouterr()
    argv = ["incident", "notify", "--kid", kid, "--message", "rotate your links", "--data-dir", data_dir, "--json"]
    assert await asyncio.to_thread(gatewayctl, argv) == 0
    out = json.loads(capsys.readouterr().out)
    [notified] = await receiver.wait_for("incident.notify")
    assert (out["event_id"], out["queued"], out["affected_subjects"]) == (notified["id"], 1, 1)
    assert notified["data"]["message"] == "rotate your links" and notified["data"]["affected_subjects"] == [ref]
    [record] = await _audited(web.services, "incident:notified")
    assert notified["id"] == f"evt_{record.seq}"
    await asyncio.sleep(1.2)  # the serving gateway's outbox ran meanwhile: still delivered once
    assert receiver.duplicates() == []


async def test_resolving_needs_a_principal_that_may_name_viewers(client: TestClient, web: World) -> None:
    await web.principal("robot", Permission.SIGN)
    body = {"subjects": ["sub_" + "0" * 32]}
    response = await client.post("/v1/subjects/resolve", json=body, headers=web.auth("robot"))
    assert response.status == 403 and (await response.json())["error"] == "forbidden"
    response = await client.post("/v1/subjects/resolve", json={"subjects": ["alice"]}, headers=web.auth("web"))
    assert response.status == 400 and (await response.json())["error"] == "invalid_request"


def test_notify_without_an_endpoint_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "plain"
    init_data_dir(data)
    assert gatewayctl(["principals", "add", "web", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert gatewayctl(["keys", "create", "--principal", "web", "--data-dir", str(data), "--json"]) == 0
    kid = json.loads(capsys.readouterr().out)["kid"]
    assert gatewayctl(["incident", "notify", "--kid", kid, "--data-dir", str(data)]) == 78
    assert "no webhook endpoint is configured" in capsys.readouterr().err


# A restart of the real process: events queued while the receiver is down are neither lost nor repeated.


def _stop(gateway: Served) -> str:
    out = gateway.stop()
    assert gateway.proc.returncode == 0, out
    return out


def _ctl(data_dir: Path, *argv: str) -> None:
    subprocess.run([*GATEWAYCTL, *argv, "--data-dir", str(data_dir)], check=True, capture_output=True)


async def _wait_until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.e2e
async def test_no_event_is_lost_or_repeated_across_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "gw"
    await asyncio.to_thread(init_data_dir, data)
    hook_port = free_port()  # the receiver is down: nothing listens here yet
    receiver = Receiver(SECRET, port=hook_port)
    configure_webhook(data, receiver.url, SECRET, backoff=0.2, max_attempts=100)
    for pid in ("web", "cdn"):
        await asyncio.to_thread(_ctl, data, "principals", "add", pid)
        await asyncio.to_thread(_ctl, data, "keys", "create", "--principal", pid)
    gateway = await asyncio.to_thread(start_serve, data)
    config = load_config(data, environ={})
    store = await open_store(config)
    try:
        await asyncio.to_thread(_ctl, data, "principals", "disable", "web")
        await _wait_until(lambda: _failed_attempts(store, 2))  # tried, refused (connection refused), audited
        await asyncio.to_thread(_stop, gateway)
        # While the gateway is down: another event, only in the audit log so far.
        await asyncio.to_thread(_ctl, data, "keys", "revoke", await _kid(store, "cdn"), "--reason", "while down")
        await receiver.start()
        gateway = await asyncio.to_thread(functools.partial(start_serve, data, port=gateway.port))
        await receiver.wait_for("principal.disabled", timeout=30)
        await receiver.wait_for("key.revoked", timeout=30)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(_stop, gateway)
        assert receiver.duplicates() == []
        assert sorted(e["type"] for e in receiver.accepted) == ["key.revoked", "principal.disabled"]
        entries = await store.outbox.entries(None, 10)
        assert sorted((e.event, e.state) for e in entries) == [("key.revoked", "delivered"),
                                                               ("principal.disabled", "delivered")]  # fmt: skip
        disabled = next(e for e in entries if e.event == "principal.disabled")
        attempts = [r for r in await store.audit.search(AuditQuery(limit=1000)) if r.event.value.startswith(
            "webhook:") and r.detail["event_id"] == disabled.event_id]  # fmt: skip
        assert [r.event.value for r in attempts][-1] == "webhook:delivered"
        assert len(attempts) == disabled.attempts >= 3  # every attempt audited, the failed ones too
        assert all(r.reason and "Connect" in r.reason for r in attempts[:-1])
    finally:
        gateway.stop(signal.SIGKILL)
        await receiver.stop()
        await store.close()


async def _failed_attempts(store: Any, at_least: int) -> bool:
    return len(await store.audit.search(AuditQuery(event="webhook:failed"))) >= at_least


async def _kid(store: Any, principal: str) -> str:
    return str((await store.keys.all(principal))[0].kid)
