"""CloudFront key groups on moto's server (completed by tests/aws_support.py): publish, revoke, ETags, failures."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.admin.keys import CdnChange
from gateway.audit.records import AuditRecord
from gateway.cdn.cloudfront_keys import CloudFrontKeyGroup, Unpublished
from gateway.cli.main import main as gatewayctl
from gateway.config import load_config
from gateway.errors import ConfigError, Conflict, InvalidInput, VerificationFailed
from gateway.keys.material import public_pem
from gateway.model import KeyAlgorithm, Permission, Rendition, SigningKey, Viewer, Visibility
from gateway.services import open_services
from gateway.signing.issuance import SignItem
from tests.aws_support import client
from tests.support import ADMIN, Clock, World, init_data_dir

CF_BASE = "https://d111111abcdef8.cloudfront.net"


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def key_group(moto_endpoint: str) -> tuple[str, str]:
    """A key group of its own for each test, holding one key made outside the gateway (a group is never empty)."""
    cf = client("cloudfront", moto_endpoint)
    name = f"bootstrap-{uuid.uuid4().hex[:8]}"
    config = {"CallerReference": name, "Name": name, "EncodedKey": _pem()}
    bootstrap = cf.create_public_key(PublicKeyConfig=config)["PublicKey"]["Id"]
    group = cf.create_key_group(KeyGroupConfig={"Name": f"gw-{name}", "Items": [bootstrap]})["KeyGroup"]["Id"]
    return group, bootstrap


def cloudfront_section(group: str, endpoint: str) -> str:
    return f"""
[cloudfront]
key_group_id = "{group}"
endpoint_url = "{endpoint}"

[profiles.cf]
dialect = "cloudfront"
base_url = "{CF_BASE}"
"""


@pytest.fixture
async def world(tmp_path: Path, moto_endpoint: str, key_group: tuple[str, str], clock: Clock) -> AsyncIterator[World]:
    await asyncio.to_thread(init_data_dir, tmp_path)
    with (tmp_path / "gateway.toml").open("a") as config_file:
        config_file.write(cloudfront_section(key_group[0], moto_endpoint))
    services = await open_services(load_config(tmp_path, environ={}), clock=clock)
    world = World(services, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF, key=None)
    yield world
    await services.close()


def _items(endpoint: str, group: str) -> list[str]:
    return list(client("cloudfront", endpoint).get_key_group(Id=group)["KeyGroup"]["KeyGroupConfig"]["Items"])


def _public_keys_named(endpoint: str, name: str) -> list[dict[str, Any]]:
    found = client("cloudfront", endpoint).list_public_keys()["PublicKeyList"].get("Items") or []
    return [k for k in found if k["Name"] == name]


async def _tail(world: World, n: int) -> list[AuditRecord]:
    return await world.services.store.audit.tail(n)  # oldest first


async def _rsa_key(world: World) -> SigningKey:
    return await world.services.admin.create_key(ADMIN, "web", KeyAlgorithm.RSA_2048, world.clock())


async def test_publish_uploads_the_public_half_adds_it_to_the_group_and_links_it(
    world: World, moto_endpoint: str, key_group: tuple[str, str]
) -> None:
    group, bootstrap = key_group
    key = await _rsa_key(world)
    published = await world.services.admin.publish_key(ADMIN, key.kid, world.clock())
    pair_id = published.external_id
    assert pair_id is not None and _items(moto_endpoint, group) == [bootstrap, pair_id]
    config = client("cloudfront", moto_endpoint).get_public_key(Id=pair_id)["PublicKey"]["PublicKeyConfig"]
    assert (config["CallerReference"], config["Name"]) == (key.kid, key.kid)
    assert config["EncodedKey"].strip() == (public_pem(key.algorithm, key.public_key or b"") or "").strip()
    [record] = await _tail(world, 1)
    assert (record.event.value, record.kid, dict(record.detail)) == (
        "key:published", key.kid, {"external_id": pair_id, "cdn": "cloudfront", "key_group": group},
    )  # fmt: skip
    # From now on the cloudfront profile signs with it, naming the id CloudFront knows it by.
    await world.media("m1", owner="alice", visibility=Visibility.UNLISTED)
    principal = await world.services.store.principals.get("web")
    assert principal is not None
    [outcome] = await world.services.issuer.issue(
        principal, Viewer("bob", source="asserted"), [SignItem("m1", Rendition.VIDEO, profile="cf")], ADMIN,
        world.clock(),
    )  # fmt: skip
    assert outcome.issued is not None and f"Key-Pair-Id={pair_id}" in outcome.issued.url


async def test_a_retried_publish_reuses_the_public_key_it_made(
    world: World, moto_endpoint: str, key_group: tuple[str, str]
) -> None:
    key = await _rsa_key(world)
    group = world.services.admin.key_group
    assert group is not None
    # An earlier attempt got as far as CloudFront, then failed before linking (say, the database was down).
    earlier = await group.publish(key.kid, public_pem(key.algorithm, key.public_key or b"") or "", "first try")
    published = await world.services.admin.publish_key(ADMIN, key.kid, world.clock())
    assert published.external_id == earlier
    assert [k["Id"] for k in _public_keys_named(moto_endpoint, key.kid)] == [earlier]
    assert _items(moto_endpoint, key_group[0]).count(earlier) == 1


class RacingClient:
    """A boto3 CloudFront client whose first UpdateKeyGroup loses a race: another writer changes the group first."""

    def __init__(self, real: Any, rival: str) -> None:
        self._real = real
        self._rival = rival
        self.updates = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def update_key_group(self, **kwargs: Any) -> Any:
        self.updates += 1
        if self.updates == 1:
            current = self._real.get_key_group(Id=kwargs["Id"])
            config = current["KeyGroup"]["KeyGroupConfig"]
            rival = {**config, "Items": [*config["Items"], self._rival]}
            self._real.update_key_group(Id=kwargs["Id"], IfMatch=current["ETag"], KeyGroupConfig=rival)
        return self._real.update_key_group(**kwargs)


async def test_the_key_group_changes_only_with_the_etag_it_was_read_with(
    moto_endpoint: str, key_group: tuple[str, str]
) -> None:
    group, bootstrap = key_group
    cf = client("cloudfront", moto_endpoint)
    rival = cf.create_public_key(PublicKeyConfig={"CallerReference": "rival", "Name": "rival", "EncodedKey": _pem()})
    racing = RacingClient(cf, rival["PublicKey"]["Id"])
    ours = await CloudFrontKeyGroup(racing, group).publish("gwk_racer", _pem(), "racing")
    # Our first write named a stale ETag and was refused (PreconditionFailed); the second, on a fresh read, kept theirs.
    assert racing.updates == 2
    assert _items(moto_endpoint, group) == [bootstrap, rival["PublicKey"]["Id"], ours]


async def test_revoking_a_published_key_takes_it_out_of_cloudfront(
    world: World, moto_endpoint: str, key_group: tuple[str, str]
) -> None:
    group, bootstrap = key_group
    key = await _rsa_key(world)
    pair_id = (await world.services.admin.publish_key(ADMIN, key.kid, world.clock())).external_id
    assert pair_id is not None
    revoked = await world.services.admin.revoke_key(ADMIN, key.kid, "laptop stolen", world.clock())
    assert revoked.cdn == CdnChange(pair_id, removed_from_group=True, deleted=True)
    assert _items(moto_endpoint, group) == [bootstrap] and _public_keys_named(moto_endpoint, key.kid) == []
    records = await _tail(world, 3)
    assert [(r.event.value, r.kid) for r in records] == [
        ("key:published", key.kid), ("key:revoked", key.kid), ("key:unpublished", key.kid),
    ]  # fmt: skip
    assert dict(records[2].detail) == {
        "cdn": "cloudfront", "key_group": group, "public_key_id": pair_id, "removed_from_group": True, "deleted": True,
    }  # fmt: skip


class RevokedMeanwhile:
    """The real key group, with the key revoked by someone else while CloudFront was being changed."""

    def __init__(self, world: World) -> None:
        real = world.services.admin.key_group
        assert real is not None
        self.real, self.world = real, world
        self.group_id = real.group_id

    async def publish(self, name: str, public_pem: str, comment: str) -> str:
        made = await self.real.publish(name, public_pem, comment)
        await self.world.services.admin.revoke_key(ADMIN, name, "compromised meanwhile", self.world.clock())
        return made

    async def unpublish(self, public_key_id: str) -> Unpublished:
        return await self.real.unpublish(public_key_id)


async def test_a_key_revoked_while_it_was_being_published_is_taken_back_out(
    world: World, moto_endpoint: str, key_group: tuple[str, str]
) -> None:
    key = await _rsa_key(world)
    world.services.admin.key_group = RevokedMeanwhile(world)
    with pytest.raises(Conflict, match="is revoked: only an active key is published"):
        await world.services.admin.publish_key(ADMIN, key.kid, world.clock())
    assert _items(moto_endpoint, key_group[0]) == [key_group[1]] and _public_keys_named(moto_endpoint, key.kid) == []
    assert (await world.services.store.keys.get(key.kid)).external_id is None  # type: ignore[union-attr]


class BlockedKeyGroup:
    """A key group whose CloudFront calls hang until released, or fail."""

    group_id = "KGBLOCKED"

    def __init__(self, fail: bool = False) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail

    async def publish(self, name: str, public_pem: str, comment: str) -> str:
        raise AssertionError("not used")

    async def unpublish(self, public_key_id: str) -> Unpublished:
        self.called.set()
        await self.release.wait()
        if self.fail:
            raise OSError("connection reset by peer")  # not even a gateway error: the revocation still stands
        return Unpublished(public_key_id, True, True)


async def test_revocation_never_waits_for_cloudfront(world: World) -> None:
    key = await world.services.admin.create_key(ADMIN, "web", KeyAlgorithm.RSA_2048, world.clock(), external_id="K1")
    blocked = BlockedKeyGroup(fail=True)
    world.services.admin.key_group = blocked
    revoking = asyncio.create_task(world.services.admin.revoke_key(ADMIN, key.kid, "compromised", world.clock()))
    await asyncio.wait_for(blocked.called.wait(), 5)
    # CloudFront has not answered, and the gateway already refuses the key everywhere it verifies.
    assert (await world.services.store.keys.get(key.kid)).revoked_at is not None  # type: ignore[union-attr]
    with pytest.raises(VerificationFailed) as refused:
        world.services.keyring.active_key("K1", world.clock(), by_external_id=True)
    assert refused.value.reason == "key-revoked"
    blocked.release.set()
    revoked = await revoking
    assert revoked.cdn == CdnChange("K1", error="connection reset by peer")
    assert [(r.event.value, r.detail.get("error")) for r in await _tail(world, 2)] == [
        ("key:revoked", None), ("key:unpublish_failed", "connection reset by peer"),
    ]  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unreachable(group: str) -> CloudFrontKeyGroup:
    import boto3
    from botocore.config import Config as BotoConfig

    boto = boto3.client("cloudfront", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                        config=BotoConfig(retries={"max_attempts": 1}))  # fmt: skip
    return CloudFrontKeyGroup(boto, group)


async def test_a_failed_cloudfront_step_is_audited_and_retried(
    world: World, moto_endpoint: str, key_group: tuple[str, str]
) -> None:
    group, bootstrap = key_group
    admin = world.services.admin
    key = await _rsa_key(world)
    pair_id = (await admin.publish_key(ADMIN, key.kid, world.clock())).external_id
    working, admin.key_group = admin.key_group, _unreachable(group)
    revoked = await admin.revoke_key(ADMIN, key.kid, "rotated out", world.clock())
    assert revoked.key.revoked_at is not None and revoked.cdn is not None
    assert (revoked.cdn.error or "").startswith("CloudFront is unreachable (GetKeyGroup)")
    assert _items(moto_endpoint, group) == [bootstrap, pair_id]  # CloudFront still trusts it, and the log says so
    [failed] = await _tail(world, 1)
    assert (failed.event.value, failed.detail["public_key_id"]) == ("key:unpublish_failed", pair_id)
    admin.key_group = working
    assert await admin.unpublish_key(ADMIN, key.kid, world.clock()) == CdnChange(pair_id or "", True, True)
    assert _items(moto_endpoint, group) == [bootstrap]
    assert [r.event.value for r in await _tail(world, 1)] == ["key:unpublished"]
    again = await admin.unpublish_key(ADMIN, key.kid, world.clock())  # nothing left to do: nothing recorded
    assert (again, [r.event.value for r in await _tail(world, 1)]) == (CdnChange(pair_id or ""), ["key:unpublished"])


async def test_a_full_key_group_is_a_conflict_and_leaves_no_public_key_behind(
    world: World, moto_endpoint: str, key_group: tuple[str, str]
) -> None:
    for _ in range(4):  # the bootstrap key and four of ours: the default quota of five
        await world.services.admin.publish_key(ADMIN, (await _rsa_key(world)).kid, world.clock())
    sixth = await _rsa_key(world)
    with pytest.raises(Conflict, match=r"TooManyPublicKeysInKeyGroup .* holds 5 keys by default"):
        await world.services.admin.publish_key(ADMIN, sixth.kid, world.clock())
    assert _public_keys_named(moto_endpoint, sixth.kid) == []
    assert (await world.services.store.keys.get(sixth.kid)).external_id is None  # type: ignore[union-attr]
    assert len(_items(moto_endpoint, key_group[0])) == 5


async def test_what_cannot_be_published(world: World) -> None:
    admin, now = world.services.admin, world.clock()
    ed25519 = await admin.create_key(ADMIN, "web", KeyAlgorithm.ED25519, now)
    with pytest.raises(InvalidInput, match="CloudFront takes rsa-2048 or ecdsa-p256 keys"):
        await admin.publish_key(ADMIN, ed25519.kid, now)
    revoked = await _rsa_key(world)
    await admin.revoke_key(ADMIN, revoked.kid, "old", now)
    with pytest.raises(Conflict, match="is revoked: only an active key is published"):
        await admin.publish_key(ADMIN, revoked.kid, now)
    linked = await admin.create_key(ADMIN, "web", KeyAlgorithm.ECDSA_P256, now, external_id="KEXISTING")
    with pytest.raises(Conflict, match="already linked to KEXISTING"):
        await admin.publish_key(ADMIN, linked.kid, now)
    active = await _rsa_key(world)
    with pytest.raises(Conflict, match="revoke it first"):
        await admin.unpublish_key(ADMIN, active.kid, now)
    admin.key_group = None
    with pytest.raises(ConfigError, match=r"cloudfront\.key_group_id is not set"):
        await admin.publish_key(ADMIN, active.kid, now)


# --- gatewayctl ----------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, moto_endpoint: str, key_group: tuple[str, str]) -> Iterator[Path]:
    init_data_dir(tmp_path)
    with (tmp_path / "gateway.toml").open("a") as config_file:
        config_file.write(cloudfront_section(key_group[0], moto_endpoint))
    assert gatewayctl(["principals", "add", "web", "--perm", "sign", "--data-dir", str(tmp_path)]) == 0
    yield tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str, **environ: str) -> tuple[int, str, str]:
    os.environ.update(environ)
    try:
        code = gatewayctl([*argv])
    finally:
        for name in environ:
            del os.environ[name]
    out = capsys.readouterr()
    return code, out.out, out.err


def test_gatewayctl_publishes_revokes_and_retries(
    data_dir: Path, moto_endpoint: str, key_group: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    where = ["--data-dir", str(data_dir), "--json"]
    code, out, _ = _run(capsys, "keys", "create", "--principal", "web", "--algorithm", "rsa-2048", *where)
    kid = json.loads(out)["kid"]
    code, out, _ = _run(capsys, "keys", "publish-cloudfront", kid, *where)
    pair_id = json.loads(out)["external_id"]
    assert code == 0 and _items(moto_endpoint, key_group[0]) == [key_group[1], pair_id]
    unreachable = f"http://127.0.0.1:{_closed_port()}"
    code, out, err = _run(capsys, "keys", "revoke", kid, "--reason", "gone", *where,
                          GATEWAY_CLOUDFRONT_ENDPOINT_URL=unreachable)  # fmt: skip
    shown = json.loads(out)
    assert (code, shown["state"], shown["cloudfront"]["error"].startswith("CloudFront is unreachable")) == (
        69, "revoked", True,
    )  # fmt: skip
    assert f"retry the CloudFront step with: gatewayctl keys unpublish-cloudfront {kid}" in err
    code, out, _ = _run(capsys, "keys", "unpublish-cloudfront", kid, "--data-dir", str(data_dir))
    assert (code, out.strip()) == (
        0, f"CloudFront public key {pair_id} removed from the key group and deleted (edges: minutes)",
    )  # fmt: skip
    assert _items(moto_endpoint, key_group[0]) == [key_group[1]]
