"""Failure paths of gatewayctl: each is one clear line on stderr and the documented exit code,
never a hang, a traceback or a quiet "all good" (0 ok, 1 failed, 2 bad usage, 3 not found,
4 conflict, 5 denied, 69 unavailable, 78 config, 141 output pipe closed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config import Config

GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]
NOBODY = 65534


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), "--actor", "tester", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def spawn(*argv: str, timeout: float = 30, env: dict[str, str] | None = None, **kw: object) -> tuple[int, str, str]:
    """gatewayctl in a process of its own: a hang fails the test (TimeoutExpired) instead of blocking it."""
    done = subprocess.run(
        [*GATEWAYCTL, *argv], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, **kw,  # type: ignore[call-overload]
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


# --- a database that cannot be opened: an error and an exit, not a hang ---------------------------


def test_a_corrupt_database_is_an_error_not_a_hang(config: Config) -> None:
    config.sqlite_path.write_bytes(b"this is not a database, just some bytes" * 100)
    code, out, err = spawn("keys", "list", "--data-dir", str(config.data_dir))
    assert (code, out, err) == (
        69,
        "",
        f"gatewayctl: cannot open database {config.sqlite_path}: file is not a database\n",
    )


@pytest.fixture
def foreign_copy(config: Config) -> Iterator[Path]:
    """A copy of the data directory owned by another user when the tests run as root (root writes anything)."""
    root = Path(tempfile.mkdtemp(prefix="gw-ro-"))
    copy = root / "data"
    shutil.copytree(config.data_dir, copy)
    if os.geteuid() == 0:
        for path in [root, copy, *copy.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
    try:
        yield copy
    finally:
        for path in [copy, *copy.rglob("*")]:
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        shutil.rmtree(root)


def _as_owner() -> list[str]:
    """Root may write a read-only file: run as the copy's owner instead."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a database read-only for the test")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_database_is_an_error_not_a_hang(foreign_copy: Path, what: str) -> None:
    database = foreign_copy / "gateway.db"
    os.chmod(database if what == "file" else foreign_copy, 0o400 if what == "file" else 0o500)
    argv = [*_as_owner(), *GATEWAYCTL, "keys", "list", "--data-dir", str(foreign_copy)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    message = f"gatewayctl: cannot open database {database}: attempt to write a readonly database\n"
    assert (done.returncode, done.stdout, done.stderr) == (69, "", message)


async def test_a_start_up_failure_after_the_store_opened_closes_it(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.services
    from gateway.errors import StoreUnavailable

    opened = []
    real_open = gateway.services.open_store

    async def recording_open(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        opened.append(await real_open(*args, **kwargs))  # type: ignore[arg-type]
        return opened[-1]

    async def failing(*_: object) -> None:
        raise StoreUnavailable("pepper unreadable")

    monkeypatch.setattr(gateway.services, "open_store", recording_open)
    monkeypatch.setattr(gateway.services.AuditLog, "open", failing)
    before = set(threading.enumerate())
    with pytest.raises(StoreUnavailable):
        await gateway.services.open_services(config)
    # The database connections' threads (the loop's own executor threads are pooled and joined at exit)
    started = [t for t in set(threading.enumerate()) - before if not t.daemon and not t.name.startswith("asyncio_")]
    for thread in started:
        thread.join(timeout=2)  # a closed connection's thread ends on its own, promptly
    leaked = [t for t in started if t.is_alive()]
    for store in opened if leaked else []:  # old behaviour: close them, or pytest would never exit
        await store.close()
    assert opened and leaked == []


# --- serve: bind first, "serving on" only once listening ----------------------------------------


def _serve(config: Config, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return spawn("serve", "--data-dir", str(config.data_dir), *argv, env=env)


def test_serve_on_a_port_in_use_exits_69_without_claiming_to_serve(config: Config) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, out, err = _serve(config, "--port", str(port))
    assert (code, out, err) == (
        69,
        "",
        f"gatewayctl: cannot listen on 127.0.0.1:{port}: the address is already in use\n",
    )


@pytest.mark.parametrize(
    ("argv", "env", "code", "message"),
    [
        (["--port", "70000"], {}, 2, "--port must be from 0 to 65535, got 70000"),
        (["--host", "[::1]"], {}, 2, "--host '[::1]' is not an IP address or host name (no brackets, no port)"),
        (["--host", "192.0.2.1", "--port", "0"], {}, 2, "--host '192.0.2.1' is not an address of this machine"),
        ([], {"GATEWAY_SERVER_HOST": "bad host"}, 78,
         "server.host 'bad host' is not an IP address or host name (no brackets, no port)"),
        ([], {"GATEWAY_SERVER_PORT": "99999"}, 78, "server.port must be an integer from 0 to 65535, got 99999"),
    ],
)  # fmt: skip
def test_serve_refuses_a_bad_address_in_one_line(
    config: Config, argv: list[str], env: dict[str, str], code: int, message: str
) -> None:
    assert _serve(config, *argv, env=env) == (code, "", f"gatewayctl: {message}\n")


def test_serve_with_a_mistyped_database_url_creates_nothing(config: Config, tmp_path: Path) -> None:
    typo = tmp_path / "nonexistent-dir" / "typo.db"
    code, out, err = _serve(config, "--port", "0", env={"GATEWAY_DATABASE_URL": f"sqlite:///{typo}"})
    message = f"gatewayctl: database {typo} does not exist: check database.url, or run 'gatewayctl init' to create it\n"
    assert (code, out, err) == (78, "", message)
    assert not typo.parent.exists()


# --- offline, pipes, config ---------------------------------------------------------------------


def test_offline_sign_with_a_public_key_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = tmp_path / "pub.pem"
    public.write_bytes(
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code = main(["sign", "--dialect", "native", "--key-file", str(public), "--key-id", "gwk_x",
                 "--url", "https://cdn.example.com/v/a.mp4", "--expires", "2000000000"])  # fmt: skip
    message = (
        f"gatewayctl: --key-file {public} holds a public key: signing needs the private key "
        "(a public key only verifies)\n"
    )
    assert (code, capsys.readouterr().err) == (2, message)


def test_a_closed_output_pipe_exits_141_quietly(config: Config) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (``head``) is gone before anything is written
    try:
        done = subprocess.run(
            [*GATEWAYCTL, "keys", "list", "--data-dir", str(config.data_dir)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=30,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_missing_config_file_named_explicitly_exits_78(
    config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = config.data_dir / "gatway.toml"
    code, _, err = run(capsys, config.data_dir, "keys", "list", "--config", str(missing))
    assert (code, err) == (78, f"gatewayctl: config file {missing} (--config) does not exist\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(missing))
    code, _, err = run(capsys, config.data_dir, "keys", "list")
    assert (code, err) == (78, f"gatewayctl: config file {missing} (GATEWAY_CONFIG) does not exist\n")


# --- a mistyped database URL never starts a new, empty database ----------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///{tmp}/nonexistent-dir/typo.db", "database {tmp}/nonexistent-dir/typo.db does not exist: "
         "check database.url, or run 'gatewayctl init' to create it"),
        ("sqlite:///{tmp}", "database {tmp} is a directory, not a database file (check database.url)"),
        ("sqlite://relative.db", "database.url 'sqlite://relative.db' is not a SQLite URL: use "
         "sqlite:///relative/to/working-dir.db or sqlite:////absolute/path.db"),
    ],
)  # fmt: skip
def test_a_mistyped_database_url_exits_78_naming_it(
    config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    tmp = config.data_dir
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url.format(tmp=tmp))
    code, _, err = run(capsys, tmp, "principals", "list")
    assert (code, err) == (78, f"gatewayctl: {message.format(tmp=tmp)}\n")
    assert not (tmp / "nonexistent-dir").exists()


def test_init_creates_the_database_a_url_names(
    config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = config.data_dir / "elsewhere" / "g.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{target}")
    code, out, _ = run(capsys, config.data_dir, "init")
    assert code == 0 and f"  created {target}\n" in out and target.stat().st_mode & 0o777 == 0o600
    assert run(capsys, config.data_dir, "principals", "list")[0] == 0


# --- quiet "all good" answers where something is wrong -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["incident", "report", "--kid", "gwk_typo"], 3,
         "no key 'gwk_typo': nothing to report (keys list shows every key id)"),
        (["subject", "erase", "nobody", "--reason", "ticket 1"], 3,
         "nothing is held about viewer subject 'nobody' (no audit records or media)"),
        (["subject", "export", "nobody", "--out", "OUT"], 3,
         "nothing is held about viewer subject 'nobody' (no audit records or media)"),
        (["audit", "prune", "--now", "2100-01-01"], 2,
         "--now 2100-01-01 is in the future: prune evaluates retention at most at the present"),
        (["audit", "verify", "--public-key", "MISSING"], 2,
         "cannot read log-signing public key MISSING: No such file or directory"),
        (["audit", "verify", "--public-key", "PRIVATE"], 2, "PRIVATE is not a PEM public key"),
        (["audit", "verify", "--export-dir", "MISSING"], 2, "--export-dir MISSING is not a directory"),
        (["keys", "list", "--principal", "ghost"], 3, "no principal 'ghost'"),
        (["grants", "list", "--principal", "ghost"], 3, "no principal 'ghost'"),
        (["audit", "tail", "-n", "0"], 2, "-n must be at least 1, got 0"),
        (["audit", "search", "--limit", "-1"], 2, "--limit must be at least 1, got -1"),
        (["audit", "search", "--since", "2026-02-01", "--until", "2026-01-01"], 2, "--since must be before --until"),
        (["grants", "add", "--principal", "eng", "--media", "typo", "--reason", "INC-1"], 3, "no media item 'typo'"),
    ],
)  # fmt: skip
def test_wrong_requests_are_not_answered_with_an_empty_success(
    config: Config, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    names = {
        "OUT": str(config.data_dir / "out.json"),
        "MISSING": str(config.data_dir / "missing"),
        "PRIVATE": str(config.log_signing_key_path),
    }
    argv = [names.get(a, a) for a in argv]
    assert run(capsys, config.data_dir, "principals", "add", "eng", "--kind", "engineer")[0] == 0
    got, out, err = run(capsys, config.data_dir, *argv)
    for name, value in names.items():
        message = message.replace(name, value)
    assert (got, out, err) == (code, "", f"gatewayctl: {message}\n")
    assert not (config.data_dir / "out.json").exists()


def test_verify_without_its_default_public_key_says_so(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    public = config.log_signing_key_path.with_suffix(".pub")
    public.unlink()
    code, out, err = run(capsys, config.data_dir, "audit", "verify")
    assert (code, out, err) == (
        78,
        "",
        f"gatewayctl: log-signing public key {public} is missing: give --public-key FILE\n",
    )


def test_an_unreadable_exported_checkpoint_fails_verification(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, config.data_dir, "audit", "checkpoint")[0] == 0
    assert config.export_dir is not None
    [exported] = (config.export_dir / "checkpoints").glob("*.json")
    exported.write_text('{"tree_size": 4')  # damaged: it would have hidden a truncated tail
    code, out, _ = run(capsys, config.data_dir, "audit", "verify")
    assert code == 1 and out.startswith(f"FAILED: exported checkpoint {exported} cannot be read: ")


def test_revoking_or_disabling_twice_is_a_conflict(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    d = config.data_dir
    assert run(capsys, d, "principals", "add", "eve", "--kind", "engineer")[0] == 0
    assert run(capsys, d, "principals", "disable", "eve")[0] == 0
    assert run(capsys, d, "principals", "disable", "eve")[::2] == (4, "gatewayctl: principal eve is already disabled\n")
    assert run(capsys, d, "principals", "add", "bob", "--kind", "engineer")[0] == 0
    assert run(capsys, d, "media", "put", "m", "--owner", "zoe", "--workspace", "w", "--video", "/v/m.mp4")[0] == 0
    added = run(capsys, d, "grants", "add", "--principal", "bob", "--media", "m", "--reason", "r", "--json")
    grant_id = json.loads(added[1])["id"]
    assert run(capsys, d, "grants", "revoke", grant_id)[0] == 0
    assert run(capsys, d, "grants", "revoke", grant_id)[::2] == (
        4,
        f"gatewayctl: grant {grant_id} was already revoked\n",
    )


def test_subject_erase_of_someone_known_only_as_a_media_owner_works(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(capsys, config.data_dir, "media", "put", "m1", "--owner", "zoe", "--workspace", "w", "--video", "/v/a")[0]
        == 0
    )
    code, out, _ = run(capsys, config.data_dir, "subject", "erase", "zoe", "--reason", "ticket 2")
    assert (code, out) == (0, "erased viewer zoe: 1 media item(s) deleted; audit key shredded\n")


def test_init_says_when_there_was_nothing_to_do(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, config.data_dir, "init") == (0, f"{config.data_dir} is already initialised\n", "")
