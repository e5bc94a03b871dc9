"""gatewayctl master-key rewrap: every sealed secret moves from one master key to another, audited, while serving."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.log import subject_key_context
from gateway.audit.records import AuditEvent
from gateway.config import load_config
from gateway.keys.keyring import seal_context
from gateway.keys.rewrap import Rewrap, census
from gateway.model import KeyAlgorithm, Permission, Principal, PrincipalKind, SigningKey
from gateway.services import Services, open_services
from gateway.store.base import AuditQuery, Store
from tests import processes
from tests.audit_support import fill, verify
from tests.processes import ctl as gatewayctl
from tests.support import ADMIN, Clock, World, init_data_dir
from tests.test_kms import kms_key, master_key_section

# --- the store's part, against SQLite and PostgreSQL ---------------------------------------------


async def _key(store: Store, kid: str, sealed: bytes) -> None:
    async with store.transaction() as tx:
        if await tx.principals.get("svc") is None:
            await tx.principals.add(Principal("svc", PrincipalKind.SERVICE, frozenset({Permission.SIGN}), 1.0))
        await tx.keys.add(SigningKey(kid, "svc", KeyAlgorithm.ED25519, sealed, 1.0, b"p" * 32))


async def test_reseal_replaces_only_what_was_read(store: Store) -> None:
    await _key(store, "gwk_a", b"old")
    head = await store.changes.head()
    async with store.transaction() as tx:
        assert await tx.keys.reseal("gwk_a", b"old", b"new")
        assert not await tx.keys.reseal("gwk_a", b"old", b"newer")  # no longer what was read
    assert (await store.keys.get("gwk_a")).sealed_private == b"new"  # type: ignore[union-attr]
    assert [(c.kind, c.ref) for c in await store.changes.since(head, 10)] == [("key", "gwk_a"), ("key", "gwk_a")]


async def test_subject_keys_page_in_order_and_an_erased_one_stays_erased(store: Store) -> None:
    async with store.transaction() as tx:
        for ref in ("b", "a", "c"):
            await tx.subjects.add_key(ref, ref.encode() * 2, 1.0)
        await tx.subjects.set_sealed_pepper(b"pepper")
    assert await store.subjects.sealed_keys("", 2) == [("a", b"aa"), ("b", b"bb")]
    assert await store.subjects.sealed_keys("b", 2) == [("c", b"cc")]
    async with store.transaction() as tx:
        await tx.subjects.erase("b", 2.0)
        assert not await tx.subjects.reseal_key("b", b"bb", b"sealed again")  # erased meanwhile: not brought back
        assert await tx.subjects.reseal_key("c", b"cc", b"CC")
        assert not await tx.subjects.reseal_pepper(b"other", b"x")
        assert await tx.subjects.reseal_pepper(b"pepper", b"PEPPER")
    assert (await store.subjects.sealed_key("b"), await store.subjects.sealed_key("c")) == (None, b"CC")
    assert await store.subjects.sealed_pepper() == b"PEPPER"


async def test_wrapped_data_keys_are_kept_by_id(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.keys.add_data_key("kms:1", b'{"k": 1}')
        await tx.keys.add_data_key("kms:2", b'{"k": 2}')
    assert await store.keys.data_keys() == {"kms:1": b'{"k": 1}', "kms:2": b'{"k": 2}'}


# --- in one process ------------------------------------------------------------------------------


@pytest.fixture
async def kms_ready(tmp_path: Path, moto_endpoint: str) -> tuple[Path, str]:
    """An initialised data directory sealing under the local key, with a KMS key configured beside it."""
    await asyncio.to_thread(init_data_dir, tmp_path)
    kms_key(moto_endpoint, f"alias/gw-{tmp_path.name}")
    with (tmp_path / "gateway.toml").open("a") as config_file:
        config_file.write(master_key_section(moto_endpoint, f"alias/gw-{tmp_path.name}", backend="local"))
    return tmp_path, moto_endpoint


async def _rewrap(services: Services, to: str, clock: Clock) -> tuple[str, int, int, int, dict[str, int]]:
    sources = services.master_key.sources
    target = sources.local() if to == "local" else await sources.kms(create=True)
    moved = await Rewrap(services.store, services.audit_log, services.master_key, target).run(ADMIN, clock(), batch=2)
    return target.key_id, moved.signing_keys, moved.subject_keys, moved.pepper, dict(moved.sources)


async def _open_all(services: Services) -> None:
    """Every sealed secret opens, each under its own master."""
    for key in await services.store.keys.all():
        await services.master_key.unseal(key.sealed_private, seal_context(key.kid))
    for ref, sealed in await services.store.subjects.sealed_keys("", 1000):
        assert len(await services.master_key.unseal(sealed, subject_key_context(ref))) == 32


async def test_rewrap_local_to_kms_and_back(kms_ready: tuple[Path, str], clock: Clock) -> None:
    data_dir, _ = kms_ready
    services = await open_services(load_config(data_dir, environ={}), clock=clock)
    try:
        world = World(services, clock)
        for viewer in ("v1", "v2", "v3"):  # a subject key each: three batches of two make the paging visible
            await fill(world, 1, viewer=viewer, media=f"m-{viewer}")
        await services.admin.create_key(ADMIN, "web", KeyAlgorithm.HMAC_SHA256, clock())
        local = services.master_key.key_id
        assert (await census(services.store)).masters() == {local}
        kms, keys, subjects, pepper, sources = await _rewrap(services, "kms", clock)
        assert (keys, subjects, pepper, sources) == (3, 3, 1, {local: 7})  # pages', web's two keys; v1-v3; pepper
        after = await census(services.store)
        assert kms.startswith("kms:") and after.masters() == {kms} and after.outside(kms) == 0
        assert (await _rewrap(services, "kms", clock))[1:4] == (0, 0, 0)  # nothing left to move: nothing recorded
        records = await services.store.audit.search(AuditQuery(event=AuditEvent.MASTER_KEY_REWRAPPED.value))
        assert [(r.detail["part"], r.detail["count"], r.detail["from"], r.detail["to"]) for r in records] == [
            ("signing keys and pepper", 4, {local: 4}, kms),
            ("subject keys", 2, {local: 2}, kms),
            ("subject keys", 1, {local: 1}, kms),
        ]
    finally:
        await services.close()
    # Another process, still configured for the local key, opens everything (the data key found in the store).
    services = await open_services(load_config(data_dir, environ={}), clock=clock)
    try:
        await _open_all(services)
        await fill(World(services, clock), 1, viewer="v1", media="m-v1")  # v1's subject key, sealed under KMS
        assert (await _rewrap(services, "local", clock))[0] == local
        assert (await census(services.store)).masters() == {local}
        assert (await verify(services)).ok
    finally:
        await services.close()


# --- while a gateway serves ---------------------------------------------------------------------


def _ctl(data_dir: Path, *argv: str, env: dict[str, str] | None = None) -> Any:
    return gatewayctl(data_dir, *argv, env=env)


@pytest.fixture
def serving(kms_ready: tuple[Path, str]) -> Iterator[tuple[Path, str]]:
    data_dir, _ = kms_ready
    with processes.serving(data_dir) as served:
        yield data_dir, served.base


class Traffic(threading.Thread):
    """Sign for a rotating set of viewers (new ones get new subject keys) and verify each URL, until stopped."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base, self.token = base, token
        self.outcomes: Counter[str] = Counter()
        self.kids: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        _call = processes.http_json
        count = 0
        while not self.stop.is_set():
            count += 1
            body = {"media_id": "m1", "rendition": "video", "viewer": {"id": f"viewer-{count % 25}"}}
            status, signed = _call(self.base + "/v1/sign", "POST", body, {"Authorization": f"Bearer {self.token}"})
            if status != 200:
                self.outcomes[f"sign {status} {signed}"] += 1
                continue
            self.kids.add(signed["kid"])
            uri = signed["url"].removeprefix("https://cdn.example.com")
            self.outcomes[f"verify {_call(self.base + '/v1/verify', headers={'X-Original-URI': uri})[0]}"] += 1

    def wait_for_verified(self, count: int) -> None:
        for _ in range(600):
            if self.outcomes["verify 200"] >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} URLs verified: {self.outcomes}")

    def wait_for(self, kid: str) -> None:
        for _ in range(600):  # 30 s: generous for a loaded CI machine; it takes milliseconds
            if kid in self.kids:
                return
            time.sleep(0.05)
        raise AssertionError(f"the server never signed with {kid}: {self.outcomes}")


@pytest.mark.e2e
def test_rewrap_while_a_gateway_signs_and_verifies(serving: tuple[Path, str]) -> None:
    data_dir, base = serving
    added = _ctl(data_dir, "principals", "add", "web", "--perm", "sign", "--perm", "sign:on-behalf")
    _ctl(data_dir, "keys", "create", "--principal", "web")
    _ctl(data_dir, "media", "put", "m1", "--owner", "alice", "--workspace", "w1", "--visibility", "unlisted",
         "--video", "/v/m1/index.m3u8")  # fmt: skip
    traffic = Traffic(base, _ctl(data_dir, "token", "--credential", added["credential_file"])["token"])
    traffic.start()
    try:
        traffic.wait_for_verified(10)  # serving, before the first rewrap
        to_kms = _ctl(data_dir, "master-key", "rewrap", "--to", "kms")
        assert to_kms["to"].startswith("kms:") and to_kms["signing_keys"] == 2 and to_kms["pepper"] == 1
        # A key sealed under KMS from the start: the running server (sealing locally) must find the data key.
        hmac = _ctl(data_dir, "keys", "create", "--principal", "web", "--algorithm", "hmac-sha256",
                    env={"GATEWAY_MASTER_KEY_BACKEND": "kms"})  # fmt: skip
        traffic.wait_for(hmac["kid"])
        to_local = _ctl(data_dir, "master-key", "rewrap", "--to", "local")
        assert to_local["signing_keys"] == 3 and to_local["pepper"] == 1 and to_local["subject_keys"] >= 1
        traffic.wait_for_verified(traffic.outcomes["verify 200"] + 10)  # and still serving after it
    finally:
        traffic.stop.set()
        traffic.join(timeout=10)
    assert set(traffic.outcomes) == {"verify 200"} and traffic.outcomes["verify 200"] > 20, traffic.outcomes
    status = _ctl(data_dir, "master-key", "status")
    assert status["not_under_sealing"] == 0 and status["sealing"] == to_local["to"]
    events = [r["event"] for r in _ctl(data_dir, "audit", "search", "--event", "master_key:rewrapped", "--limit", "50")]
    assert len(events) >= 2
    assert _ctl(data_dir, "audit", "verify")["ok"] is True
