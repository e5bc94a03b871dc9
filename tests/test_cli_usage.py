"""gatewayctl as a newcomer meets it (issue 19): a version, global options anywhere, a mistyped option or
variable named, read-only commands that create nothing, an init that leaves nothing half-made, and
options offered only where they do something."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from gateway.cli.main import build_parser, main
from gateway.config import NOT_SETTINGS, Config, load_config
from gateway.config.settings import FIELDS, env_name
from gateway.errors import ConfigError
from gateway.model import KeyAlgorithm

ROOT = Path(__file__).parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The last line argparse prints for a usage error (exit 2)."""
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    assert done.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """Every command and the options it takes."""
    found: dict[tuple[str, ...], list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.update(_leaves(child, (*path, name)))
    if not found and path:
        found[path] = [name for action in parser._actions for name in action.option_strings]
    return found


# --- 4. a version ----------------------------------------------------------------------------------


def test_version_names_the_release(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (done.value.code, capsys.readouterr().out) == (0, f"gatewayctl {release}\n")
    assert metadata.version("media-gateway") == release


# --- 5. global options before or after the command -------------------------------------------------


def test_global_options_work_before_or_after_the_command(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(config.data_dir)
    before = run(capsys, "--data-dir", data, "keys", "list", "--json")
    assert before == run(capsys, "keys", "list", "--data-dir", data, "--json") and before[0] == 0
    assert run(capsys, "--data-dir", data, "--config", str(config.data_dir / "gateway.toml"), "doctor")[0] == 0
    assert run(capsys, "--data-dir", data, "--actor", "ops:alice", "principals", "add", "web")[0] == 0
    assert run(capsys, "principals", "add", "ci", "--data-dir", data, "--actor", "ops:bob")[0] == 0
    code, out, _ = run(capsys, "--data-dir", data, "audit", "search", "--event", "principal:created", "--json")
    assert code == 0 and [(r["subject"], r["actor"]) for r in json.loads(out)][-2:] == [
        ("web", "ops:alice"), ("ci", "ops:bob"),
    ]  # fmt: skip


def test_the_top_level_help_lists_the_global_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    group = out.split("global options (before or after the command):\n")[1].split("\n\n")[0]
    assert [line.split()[0] for line in group.splitlines() if line.startswith("  --")] == [
        "--data-dir", "--config", "--actor",
    ]  # fmt: skip
    assert "--version" in out


# --- 6. a mistyped GATEWAY_ variable stops start-up, as an unknown key in the file does -----------

MISTYPED = "GATEWAY_" + "SERVER_PROT"  # spelt in two halves: the scan below must not take it for a used name


def test_a_mistyped_gateway_variable_exits_78_naming_it(
    config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MISTYPED, "9000")
    message = f"unknown setting(s) in the environment: {MISTYPED} (did you mean GATEWAY_SERVER_PORT?)"
    assert run(capsys, "keys", "list", "--data-dir", str(config.data_dir)) == (78, "", f"gatewayctl: {message}\n")
    code, out, _ = run(capsys, "doctor", "--data-dir", str(config.data_dir))
    assert (code, out) == (1, f"FAIL config: {message}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(config.data_dir, environ={"GATEWAY_" + "NOTHING_LIKE_IT": "1", MISTYPED: "1"})
    assert refused.value.message == (
        f"unknown setting(s) in the environment: GATEWAY_NOTHING_LIKE_IT, {MISTYPED} "
        "(did you mean GATEWAY_SERVER_PORT?)"
    )


def test_the_variables_that_are_not_settings_are_accepted(tmp_path: Path) -> None:
    load_config(tmp_path, environ={name: "1" for name in NOT_SETTINGS} | {"PGPASSWORD": "x", "GATEWAYS": "x"})


# Where a name is used as a variable: quoted, assigned (shell, Dockerfile, docs), a YAML key, ${...}, `...`.
_USED = re.compile(r"(?<![A-Za-z0-9_])(GATEWAY_[A-Z0-9_]*[A-Z0-9])(?=[\"'=:`}])")


def test_every_gateway_variable_the_project_uses_is_a_setting_or_named_as_none() -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    scanned = [ROOT / f for f in files if f.endswith((".py", ".md", ".sh", ".yaml", ".toml", "Dockerfile", "run"))]
    used = {name for path in scanned if path.exists() for name in _USED.findall(path.read_text(errors="replace"))}
    assert {"GATEWAY_REQUIRE_SERVICES", "GATEWAY_DATABASE_URL", "GATEWAY_DEMO_SCREENSHOT"} <= used
    known = {env_name(*key) for key in FIELDS} | NOT_SETTINGS
    assert sorted(used - known) == []


# --- 7. read-only commands create nothing ----------------------------------------------------------


def test_commands_before_init_create_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    data = str(empty)
    for argv in (
        ["doctor"], ["doctor", "--json"], ["keys", "list"], ["principals", "list"], ["audit", "tail"],
        ["audit", "verify"], ["migrate"], ["token", "--viewer", "bob"], ["master-key", "status"],
        ["webhooks", "list"], ["health", "--port", "1"],
    ):  # fmt: skip
        code, _, _ = run(capsys, *argv, "--data-dir", data)
        assert code != 0, argv
    assert sorted(empty.iterdir()) == []
    code, out, _ = run(capsys, "doctor", "--data-dir", data)
    lines = out.splitlines()
    assert lines[0] == f"warn config: {empty}/gateway.toml does not exist: built-in defaults and GATEWAY_ variables " \
                       "('gatewayctl init' writes one)"  # fmt: skip
    assert f"warn checkpoint export: {empty}/audit-export does not exist yet (the first checkpoint creates it)" in lines
    missing = tmp_path / "never-made"
    assert run(capsys, "doctor", "--data-dir", str(missing))[0] == 1 and not missing.exists()


# --- 8. a failed init leaves nothing behind -------------------------------------------------------


def test_an_init_that_fails_on_its_configuration_removes_what_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SIGNING_DEFAULT_TTL", "7200")  # beyond max_ttl: found once gateway.toml is written
    fresh = tmp_path / "fresh"
    code, out, err = run(capsys, "init", "--data-dir", str(fresh))
    assert (code, out, err) == (78, "", "gatewayctl: signing.default_ttl must not exceed signing.max_ttl\n")
    assert not fresh.exists()


def test_an_init_against_a_database_sealed_by_another_master_key_leaves_nothing_behind(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for data in (first, second):
        data.mkdir()
        (data / "gateway.toml").write_text(f'[database]\nurl = "{postgres_url}"\n')
    assert run(capsys, "init", "--data-dir", str(first))[0] == 0
    code, out, err = run(capsys, "init", "--data-dir", str(second))
    assert (code, out) == (69, "")
    assert re.fullmatch(
        r"gatewayctl: secrets sealed by master key local:[0-9a-f]{16} cannot be opened: no such master key here; "
        r"this database was set up by another data directory: copy its keys/master\.key and keys/log-signing\.key "
        r"here, then run 'gatewayctl init' again\n", err,
    )  # fmt: skip
    assert sorted(p.name for p in second.iterdir()) == ["gateway.toml"]  # it was there before
    (second / "keys").mkdir(mode=0o700)
    for name in ("master.key", "log-signing.key", "log-signing.pub"):
        (second / "keys" / name).write_bytes((first / "keys" / name).read_bytes())
        (second / "keys" / name).chmod(0o600)
    assert run(capsys, "init", "--data-dir", str(second))[0] == 0


# --- 10. options where they do something, and what went wrong named first ------------------------

# The commands whose changes are audited under --actor; every other command is offered no --actor.
WRITES = {
    ("init",), ("principals", "add"), ("principals", "disable"), ("credentials", "rotate"),
    ("credentials", "revoke"), ("keys", "create"), ("keys", "link"), ("keys", "export-secret"),
    ("keys", "revoke"), ("keys", "rotate"), ("keys", "publish-cloudfront"), ("keys", "unpublish-cloudfront"),
    ("master-key", "rewrap"), ("grants", "add"), ("grants", "revoke"), ("media", "put"),
    ("media", "revoke-links"), ("media", "delete"), ("audit", "prune"), ("incident", "report"),
    ("incident", "notify"), ("subject", "export"), ("subject", "erase"),
}  # fmt: skip


def test_actor_is_offered_only_where_a_change_is_recorded() -> None:
    leaves = _leaves(build_parser())
    assert {path for path, options in leaves.items() if "--actor" in options} == WRITES


def test_serve_takes_no_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "serve", "--json") == "gatewayctl serve: error: unrecognized arguments: --json"


def test_a_mistyped_option_is_named_before_a_missing_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "keys", "create", "--principle", "web") == (
        "gatewayctl keys create: error: unrecognized arguments: --principle (did you mean --principal?)"
    )
    assert usage_error(capsys, "keys", "create") == "gatewayctl keys create: error: the following arguments are " \
                                                    "required: --principal"  # fmt: skip
    assert usage_error(capsys, "keys") == "gatewayctl keys: error: the following arguments are required: ACTION"


def test_a_viewer_token_before_init_says_to_run_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "token", "--viewer", "bob", "--data-dir", str(tmp_path)) == (
        78, "", f"gatewayctl: {tmp_path} is not initialised: run 'gatewayctl init' (it sets up the development "
        "identity provider that 'token --viewer' signs with)\n",
    )  # fmt: skip


def test_the_algorithm_help_names_every_key_algorithm() -> None:
    [create] = [a for a in _parser_of(("keys", "create"))._actions if "--algorithm" in a.option_strings]
    assert [word for word in re.findall(r"([a-z0-9-]+) \(", str(create.help))] == [a.value for a in KeyAlgorithm]


def _parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


# --- 14. offline verify reads the key id the URL carries ------------------------------------------


def test_offline_cloudfront_verify_needs_no_key_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "priv.pem", tmp_path / "pub.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    code, url, _ = run(capsys, "sign", "--dialect", "cloudfront", "--key-file", str(private), "--key-id",
                       "K2JCJMDEHXQW5F", "--url", "https://d1.cloudfront.net/v/a.m3u8",
                       "--expires", "1900000000")  # fmt: skip
    assert code == 0
    verify = ["verify", "--dialect", "cloudfront", "--key-file", str(public), "--url", url.strip(),
              "--now", "1800000000"]  # fmt: skip
    assert run(capsys, *verify) == (0, "valid until 2030-03-17T17:46:40Z (key K2JCJMDEHXQW5F)\n", "")
    assert run(capsys, *verify, "--key-id", "KOTHER") == (
        1, "invalid: unknown key id: the URL names a different key than the one given\n", "",
    )  # fmt: skip
