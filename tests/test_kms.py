"""The master key in AWS KMS (moto's server on loopback): envelope encryption, first run, start-up failures."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.cli.main import main as gatewayctl
from gateway.cli.setup import _DEV_CONFIG
from gateway.config import Config, load_config
from gateway.errors import ConfigError, StoreUnavailable
from gateway.keys.kms import WrappedDataKey
from gateway.keys.rewrap import census
from gateway.keys.sealing import LocalMasterKey, sealed_by
from gateway.services import open_services
from tests.aws_support import client
from tests.support import init_data_dir

CONTEXT = {"purpose": "media-gateway master data key"}


def kms_key(endpoint: str, alias: str) -> str:
    """A fresh KMS key in moto, named by ``alias``; returns its ARN."""
    kms = client("kms", endpoint)
    arn = str(kms.create_key()["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def master_key_section(endpoint: str, key_id: str, backend: str = "kms") -> str:
    return f'\n[master_key]\nbackend = "{backend}"\nkms_key_id = "{key_id}"\nkms_endpoint_url = "{endpoint}"\n'


async def kms_first_run(data_dir: Path, endpoint: str, key_id: str) -> Config:
    """A data directory whose very first start (init) already has the KMS master key configured."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "gateway.toml").write_text(_DEV_CONFIG + master_key_section(endpoint, key_id))
    assert await asyncio.to_thread(gatewayctl, ["init", "--data-dir", str(data_dir)]) == 0  # it runs its own loop
    return load_config(data_dir, environ={})


async def _data_keys(config: Config) -> list[WrappedDataKey]:
    services = await open_services(config)
    try:
        return [WrappedDataKey.from_bytes(b) for b in (await services.store.keys.data_keys()).values()]
    finally:
        await services.close()


async def test_first_run_makes_one_data_key_and_seals_everything_under_it(tmp_path: Path, moto_endpoint: str) -> None:
    arn = kms_key(moto_endpoint, "alias/gw-first-run")
    config = await kms_first_run(tmp_path, moto_endpoint, "alias/gw-first-run")
    services = await open_services(config)
    try:
        sealing = services.master_key.key_id
        assert sealing.startswith("kms:")
        found = await census(services.store)  # init sealed the pages principal's key and the audit pepper
        assert (dict(found.signing_keys), found.pepper) == ({sealing: 1}, sealing)
    finally:
        await services.close()
    [wrapped] = await _data_keys(config)  # a second start unwrapped the same data key: none was added
    assert (wrapped.key_id, wrapped.kms_key, wrapped.requested_as) == (sealing, arn, "alias/gw-first-run")
    plaintext = client("kms", moto_endpoint).decrypt(CiphertextBlob=wrapped.ciphertext, EncryptionContext=CONTEXT)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))
    assert len(plaintext["Plaintext"]) == 32 and plaintext["Plaintext"] not in stored  # only the wrapped copy is kept


async def test_the_kms_master_key_seals_like_the_local_one(tmp_path: Path, moto_endpoint: str) -> None:
    kms_key(moto_endpoint, "alias/gw-seal")
    services = await open_services(await kms_first_run(tmp_path, moto_endpoint, "alias/gw-seal"))
    try:
        master = services.master_key
        sealed = await master.seal(b"private key bytes", b"gateway-signing-key:gwk_1")
        assert sealed_by(sealed) == master.key_id and b"private key bytes" not in sealed
        assert await master.unseal(sealed, b"gateway-signing-key:gwk_1") == b"private key bytes"
        with pytest.raises(StoreUnavailable, match="does not open"):
            await master.unseal(sealed, b"gateway-signing-key:gwk_2")  # the context is bound (AAD)
        with pytest.raises(StoreUnavailable, match="does not open"):
            await master.unseal(sealed[:-1] + bytes([sealed[-1] ^ 1]), b"gateway-signing-key:gwk_1")
    finally:
        await services.close()


async def test_a_process_opens_secrets_of_the_old_local_key_and_of_kms(tmp_path: Path, moto_endpoint: str) -> None:
    kms_key(moto_endpoint, "alias/gw-both")
    # Everything sealed under the local key, some of it in the v1 envelope older versions wrote.
    await asyncio.to_thread(init_data_dir, tmp_path)
    local = (tmp_path / "keys" / "master.key").read_bytes()
    nonce = secrets.token_bytes(12)
    v1 = b"\x01" + nonce + AESGCM(local).encrypt(nonce, b"old secret", b"ctx")
    with (tmp_path / "gateway.toml").open("a") as config_file:
        config_file.write(master_key_section(moto_endpoint, "alias/gw-both"))
    services = await open_services(load_config(tmp_path, environ={}))
    try:
        assert await services.master_key.unseal(v1, b"ctx") == b"old secret"
        sealed = await services.master_key.seal(b"new secret", b"ctx")
        assert sealed_by(sealed).startswith("kms:")
    finally:
        await services.close()
    # Back on the local master key (config says so): the KMS-sealed secret still opens, found in the store.
    services = await open_services(load_config(tmp_path, environ={"GATEWAY_MASTER_KEY_BACKEND": "local"}))
    try:
        assert services.master_key.key_id == LocalMasterKey.load(tmp_path / "keys" / "master.key").key_id
        assert await services.master_key.unseal(sealed, b"ctx") == b"new secret"
    finally:
        await services.close()


def test_backend_kms_needs_a_key_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"master_key\.kms_key_id is required"):
        load_config(tmp_path, environ={"GATEWAY_MASTER_KEY_BACKEND": "kms"})
    with pytest.raises(ConfigError, match=r"master_key\.backend must be one of local, kms"):
        load_config(tmp_path, environ={"GATEWAY_MASTER_KEY_BACKEND": "vault"})


@pytest.fixture
def initialised(tmp_path: Path) -> Iterator[Path]:
    init_data_dir(tmp_path)
    yield tmp_path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(data_dir: Path, capsys: pytest.CaptureFixture[str], **environ: str) -> tuple[int, str]:
    os.environ.update(environ)
    try:
        code = gatewayctl(["keys", "list", "--data-dir", str(data_dir)])
    finally:
        for name in environ:
            del os.environ[name]
    return code, capsys.readouterr().err


def test_an_unreachable_kms_stops_start_up_with_69(
    initialised: Path, moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _start(
        initialised, capsys, GATEWAY_MASTER_KEY_BACKEND="kms", GATEWAY_MASTER_KEY_KMS_KEY_ID="alias/any",
        GATEWAY_MASTER_KEY_KMS_ENDPOINT_URL=f"http://127.0.0.1:{_closed_port()}",
    )  # fmt: skip
    assert (code, "AWS KMS is unreachable (GenerateDataKey)" in err, "Traceback" in err) == (69, True, False), err


def test_an_unknown_kms_key_stops_start_up_with_78(
    initialised: Path, moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _start(
        initialised, capsys, GATEWAY_MASTER_KEY_BACKEND="kms", GATEWAY_MASTER_KEY_KMS_ENDPOINT_URL=moto_endpoint,
        GATEWAY_MASTER_KEY_KMS_KEY_ID="alias/no-such-key",
    )  # fmt: skip
    expected = "AWS KMS refused GenerateDataKey with key 'alias/no-such-key': NotFoundException"
    assert (code, expected in err, "Traceback" in err) == (78, True, False), err


@pytest.fixture
def iam_enforced(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """Credentials of an IAM user with no permissions, while moto checks every request's IAM policy."""
    iam = client("iam", moto_endpoint)
    iam.create_user(UserName="no-kms-rights")
    key = iam.create_access_key(UserName="no-kms-rights")["AccessKey"]
    boto3.DEFAULT_SESSION = None  # boto3 keeps the credentials it first found: let it read these
    _moto_auth(moto_endpoint, b"0")
    try:
        yield {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    finally:
        _moto_auth(moto_endpoint, b"inf")
        boto3.DEFAULT_SESSION = None


def _moto_auth(endpoint: str, unauthenticated_requests: bytes) -> None:
    headers = {"Content-Type": "text/plain"}
    url = endpoint + "/moto-api/reset-auth"
    request = urllib.request.Request(url, unauthenticated_requests, headers, method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


def test_access_denied_by_kms_stops_start_up_with_78(
    initialised: Path, moto_endpoint: str, iam_enforced: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    saved = {name: os.environ[name] for name in iam_enforced}
    code, err = _start(
        initialised, capsys, GATEWAY_MASTER_KEY_BACKEND="kms", GATEWAY_MASTER_KEY_KMS_ENDPOINT_URL=moto_endpoint,
        GATEWAY_MASTER_KEY_KMS_KEY_ID="alias/any", **iam_enforced,
    )  # fmt: skip
    os.environ.update(saved)
    assert (code, "not authorized to perform: kms:GenerateDataKey" in err, "Traceback" in err) == (78, True, False), err
