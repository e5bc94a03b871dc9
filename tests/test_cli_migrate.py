"""``gatewayctl migrate``: a schema behind the code is refused until migrated; PostgreSQL from init on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.main import main as gatewayctl
from gateway.config import Config
from gateway.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from tests.support import sqlite_at_version


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = gatewayctl(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_database_behind_the_code_is_refused_until_migrated(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(config.data_dir)
    sqlite_at_version(config.sqlite_path, 2)  # as an older gateway left it, with init's rows
    capsys.readouterr()
    code, out, err = _run(capsys, "keys", "list", "--data-dir", data)
    assert (code, out) == (69, "")
    assert err == (
        f"gatewayctl: database {config.sqlite_path} has schema v2, behind this gateway's v{SCHEMA_VERSION}: "
        "run 'gatewayctl migrate'\n"
    )
    code, out, err = _run(capsys, "migrate", "--data-dir", data, "--json")
    applied = [migration.version for migration in MIGRATIONS[1:]]
    assert applied[0] == 3 and applied[-1] == SCHEMA_VERSION
    assert (code, json.loads(out), err) == (0, {"database": str(config.sqlite_path), "applied": applied}, "")
    code, out, _ = _run(capsys, "migrate", "--data-dir", data)
    assert (code, out) == (0, f"{config.sqlite_path} is already at the current schema\n")
    code, out, _ = _run(capsys, "keys", "list", "--data-dir", data, "--json")
    assert code == 0 and [k["principal"] for k in json.loads(out)] == ["pages"]


def test_init_and_serve_on_postgresql(tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """init creates the schema on an empty PostgreSQL database; a second data dir shares it (another replica)."""
    first, second = tmp_path / "a", tmp_path / "b"
    for data in (first, second):
        data.mkdir()
        (data / "gateway.toml").write_text(f'[database]\nurl = "{postgres_url}"\n')
    code, out, err = _run(capsys, "init", "--data-dir", str(first), "--json")
    assert code == 0, err
    assert json.loads(out)["created"][-1] == "principal pages (signs page-URL redirects) with its key"
    code, out, _ = _run(capsys, "migrate", "--data-dir", str(first))
    assert (code, out) == (0, f"{postgres_url} is already at the current schema\n")
    for name in ("master.key", "log-signing.key", "log-signing.pub"):  # replicas share the keys
        (second / "keys").mkdir(exist_ok=True, mode=0o700)
        (second / "keys" / name).write_bytes((first / "keys" / name).read_bytes())
        (second / "keys" / name).chmod(0o600)
    code, out, err = _run(capsys, "principals", "add", "web", "--data-dir", str(second), "--json")
    assert code == 0, err
    code, out, _ = _run(capsys, "principals", "list", "--data-dir", str(first), "--json")
    assert sorted(p["id"] for p in json.loads(out)) == ["pages", "web"]
