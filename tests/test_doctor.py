"""gatewayctl doctor: one line per check, exit 1 when any check fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.doctor import FAIL, OK, WARN, _clock_check
from gateway.cli.main import main as gatewayctl
from gateway.store.sqlite.schema import SCHEMA_VERSION
from tests.nginx_server import nginx_binary
from tests.support import init_data_dir
from tests.webhook_receiver import configure_webhook


def _doctor(capsys: pytest.CaptureFixture[str], data: Path, *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = gatewayctl(["doctor", "--data-dir", str(data), *argv])
    return code, capsys.readouterr().out.splitlines()


def _checks(lines: list[str]) -> list[tuple[str, str]]:
    """(status, check name) per line: ``STATUS name: detail``."""
    return [(line[:4].strip(), line[5:].split(":", 1)[0]) for line in lines]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    init_data_dir(tmp_path)
    return tmp_path


def test_a_fresh_data_directory_passes_with_warnings(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _doctor(capsys, data)
    assert code == 0
    assert _checks(lines) == [
        ("ok", "config"), ("ok", "keys directory"), ("ok", "master key"), ("ok", "log-signing key"),
        ("ok", "development IdP key"), ("warn", "master key apart"), ("ok", "store"), ("ok", "clock"),
        ("ok", "subject keys"), ("warn", "checkpoint export"), ("skip", "webhooks"), ("ok", "metrics"),
    ]  # fmt: skip
    assert lines[6] == f"ok   store: {data / 'gateway.db'} reachable, schema v{SCHEMA_VERSION} (this gateway's)"
    assert lines[5].startswith("warn master key apart: keys/master.key is on the database's disk")


def test_a_key_file_others_can_read_fails(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data / "keys" / "master.key").chmod(0o644)
    code, lines = _doctor(capsys, data)
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [f"FAIL master key: {data / 'keys' / 'master.key'} is mode 0644: others can read it (chmod 600)"]


def test_a_bad_configuration_is_the_only_line(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (data / "gateway.toml").open("a") as toml:
        toml.write("\n[limits]\nprincipal_rate = 5\n")
    code, lines = _doctor(capsys, data)
    assert (code, lines) == (1, ["FAIL config: limits.principal_burst must be at least 1 when limits.principal_rate "
                                 "is set"])  # fmt: skip


def test_webhook_secrets_are_checked(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_webhook(data, "http://127.0.0.1:9/hooks", b"short")
    code, lines = _doctor(capsys, data, "--json")
    checks = {c["name"]: c for c in json.loads("\n".join(lines))}
    assert code == 1
    assert checks["webhooks"] == {
        "name": "webhooks", "status": FAIL,
        "detail": "webhooks.backend.secret_file: the secret in keys/webhook-backend.secret is shorter than 16 bytes",
    }  # fmt: skip
    assert checks["webhooks.backend.secret_file"]["status"] == OK


def test_a_webhook_secret_others_can_read_fails(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_webhook(data, "https://backend.example/hooks", b"0123456789abcdef0123")
    (data / "keys" / "webhook-backend.secret").chmod(0o640)
    code, lines = _doctor(capsys, data)
    assert code == 1
    assert ("FAIL", "webhooks.backend.secret_file") in _checks(lines)
    assert ("ok", "webhooks") in _checks(lines)


def test_nginx_syntax_is_checked_when_given(data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    nginx = nginx_binary()
    broken = tmp_path / "nginx.conf"
    broken.write_text("events {}\nhttp { server { listen 127.0.0.1:0 }\n")
    code, lines = _doctor(capsys, data, "--nginx-config", str(broken), "--nginx", nginx)
    assert code == 1
    [last] = lines[-1:]
    assert last.startswith("FAIL nginx: ") and "[emerg]" in last


def test_an_unreachable_postgresql_fails_the_store(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (data / "gateway.toml").open("a") as toml:
        toml.write('\n[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n')
    code, lines = _doctor(capsys, data)
    assert code == 1
    assert ("FAIL", "store") in _checks(lines) and ("skip", "clock") in _checks(lines)


def test_postgresql_reachable_with_its_clock_compared(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "pg"
    data.mkdir()
    (data / "gateway.toml").write_text(f'[database]\nurl = "{postgres_url}"\n')
    init_data_dir(data)
    code, lines = _doctor(capsys, data)
    assert code == 0, lines
    [store] = [line for line in lines if line.startswith("ok   store:")]
    assert store == f"ok   store: PostgreSQL reachable, schema v{SCHEMA_VERSION} (this gateway's)"
    [clock] = [line for line in lines if " clock: " in line]
    assert clock.startswith("ok   clock: database clock ") and clock.endswith(" s from ours")


@pytest.mark.parametrize(("skew", "status"), [(0.2, OK), (-2.0, WARN), (7.5, FAIL)])
async def test_clock_skew_against_the_database(skew: float, status: str) -> None:
    async def database_time() -> float:
        return 1000.0 + skew

    check = await _clock_check(database_time, lambda: 1000.0, remote=True)
    assert (check.status, check.detail.split(":")[0]) == (status, f"database clock {skew:+.3f} s from ours")
