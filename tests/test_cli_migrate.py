"""``gatewayctl migrate``: a schema behind the code is refused until migrated; PostgreSQL from init on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.cli.main import main as gatewayctl
from gateway.config import Config


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = gatewayctl(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_database_behind_the_code_is_refused_until_migrated(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(config.data_dir)
    conn = sqlite3.connect(config.sqlite_path, isolation_level=None)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")  # as an older gateway left it
    conn.execute("ALTER TABLE audit DROP COLUMN body_sha256")
    conn.execute("DROP TABLE link_revocations")
    conn.execute("DROP TABLE changes")
    conn.execute("DROP INDEX media_links_revoked")
    conn.execute("DROP TABLE media_paths")
    conn.execute("ALTER TABLE media DROP COLUMN links_revoked_at")
    conn.execute("ALTER TABLE media DROP COLUMN prefixes")
    conn.execute("DROP INDEX credentials_by_principal")
    conn.close()
    capsys.readouterr()
    code, out, err = _run(capsys, "keys", "list", "--data-dir", data)
    assert (code, out) == (69, "")
    assert err == (
        f"gatewayctl: database {config.sqlite_path} has schema v2, behind this gateway's v5: run 'gatewayctl migrate'\n"
    )
    code, out, err = _run(capsys, "migrate", "--data-dir", data, "--json")
    assert (code, json.loads(out), err) == (0, {"database": str(config.sqlite_path), "applied": [3, 4, 5]}, "")
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
