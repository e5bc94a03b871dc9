"""Attack: read another user's data off a shared host. The database (whose raw log holds full client
IPs), its -wal/-shm files, the config, keys, credential files, the audit export and incident reports
were world-readable under a default umask. Every directory the gateway makes is 0700 and every
file 0600, whatever the umask."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.audit.export import DirectoryExporter
from gateway.store.sqlite import SqliteStore

GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The umask of this process (so of files SQLite and the exporter create here) during the test."""
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


def _ctl(data_dir: Path, mask: int, *argv: str) -> str:
    done = subprocess.run(
        [*GATEWAYCTL, *argv, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(mask),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _modes(root: Path) -> dict[str, str]:
    found = {".": oct(root.stat().st_mode & 0o777)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(path.stat().st_mode & 0o777)
    return found


def test_everything_gatewayctl_writes_is_owner_only(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "new" / "data"  # init creates it (and its parent)
    _ctl(data, umask, "init")
    _ctl(data, umask, "principals", "add", "web", "--perm", "sign", "--perm", "sign:on-behalf")
    kid = _ctl(data, umask, "keys", "create", "--principal", "web", "--json").split('"kid": "')[1].split('"')[0]
    _ctl(data, umask, "media", "put", "m1", "--owner", "alice", "--workspace", "w", "--video", "/v/m1.mp4")
    _ctl(data, umask, "audit", "checkpoint")  # exports the checkpoint and sealed segments
    _ctl(data, umask, "incident", "report", "--kid", kid, "--json", str(data / "reports" / "incident.json"))
    _ctl(data, umask, "subject", "export", "alice", "--out", str(data / "reports" / "alice.json"))
    modes = _modes(data)
    assert modes.pop(".") == "0o700" and oct((tmp_path / "new").stat().st_mode & 0o777) == "0o700"
    for name in ("keys", "keys/credentials", "audit-export", "audit-export/checkpoints", "reports"):
        assert modes[name] == "0o700", name
    for name in ("gateway.db", "gateway.toml", "keys/credentials/web.json", "reports/incident.json",
                 "reports/alice.json", "keys/log-signing.pub", "keys/dev-idp.pub"):  # fmt: skip
        assert modes[name] == "0o600", name
    assert {n: m for n, m in modes.items() if m not in ("0o600", "0o700")} == {}


async def test_sqlite_companion_files_are_owner_only_whoever_creates_them(tmp_path: Path, umask: int) -> None:
    """SQLite gives -wal/-shm the database file's own bits, so the file is created 0600 first."""
    path = tmp_path / "g.db"
    store = await SqliteStore.open(path, create=True)
    try:
        async with store.transaction() as tx:
            await tx.audit.purge_raw(0.0)  # a write: the -wal and -shm files exist while open
        other = sqlite3.connect(path)  # another process's connection, with this process's umask
        other.execute("SELECT count(*) FROM audit").fetchall()
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
        other.close()
    finally:
        await store.close()
    assert modes == {"g.db": "0o600", "g.db-wal": "0o600", "g.db-shm": "0o600"}


async def test_a_world_readable_database_from_an_older_version_is_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    await (await SqliteStore.open(path, create=True)).close()
    os.chmod(path, 0o644)
    await (await SqliteStore.open(path, create=True)).close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_audit_export_directories_and_files_are_owner_only(tmp_path: Path, umask: int) -> None:
    exporter = DirectoryExporter(tmp_path / "export")
    await exporter.export("segments/viewer/000000000001-000000000002.jsonl", "{}\n", 86400)
    modes = _modes(tmp_path / "export")
    assert modes == {
        ".": "0o700",
        "segments": "0o700",
        "segments/viewer": "0o700",
        "segments/viewer/000000000001-000000000002.jsonl": "0o600",
    }
