from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.errors import ConfigError, StoreUnavailable
from gateway.keys.sealing import LocalMasterKey


async def test_seal_roundtrip_binds_the_context(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    assert LocalMasterKey.create(path) is True
    assert LocalMasterKey.create(path) is False  # never overwritten
    assert path.stat().st_mode & 0o777 == 0o600
    key = LocalMasterKey.load(path)
    sealed = await key.seal(b"secret", b"kid-1")
    assert b"secret" not in sealed
    assert await key.unseal(sealed, b"kid-1") == b"secret"
    with pytest.raises(StoreUnavailable):
        await key.unseal(sealed, b"kid-2")  # a sealed blob cannot be moved to another key id
    with pytest.raises(StoreUnavailable):
        await key.unseal(sealed[:-1] + bytes([sealed[-1] ^ 1]), b"kid-1")


async def test_another_master_key_cannot_open(tmp_path: Path) -> None:
    LocalMasterKey.create(tmp_path / "a")
    LocalMasterKey.create(tmp_path / "b")
    sealed = await LocalMasterKey.load(tmp_path / "a").seal(b"x", b"c")
    with pytest.raises(StoreUnavailable):
        await LocalMasterKey.load(tmp_path / "b").unseal(sealed, b"c")


def test_a_world_readable_master_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    LocalMasterKey.create(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        LocalMasterKey.load(path)


def test_a_missing_master_key_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gatewayctl init"):
        LocalMasterKey.load(tmp_path / "nope")
