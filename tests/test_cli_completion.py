"""``gatewayctl completion bash|zsh|fish`` (issue 19, item 11): each script is valid for its shell and completes
commands, options, option choices and files, drawn from the parser (a new command completes at once)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.completion import script, tree
from gateway.cli.main import build_parser
from tests.conftest import require_service

GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]


def _shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        require_service(f"{name} (apt-get install {name})")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each shell's script, as ``gatewayctl completion SHELL`` prints it (a real process)."""
    directory = tmp_path_factory.mktemp("completion")
    made = {}
    for shell in ("bash", "zsh", "fish"):
        done = subprocess.run([*GATEWAYCTL, "completion", shell], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, "")
        made[shell] = directory / f"gatewayctl.{shell}"
        made[shell].write_text(done.stdout)
    return made


def test_the_tree_is_the_parser() -> None:
    nodes = dict(tree(build_parser()))
    assert nodes[""].words[:3] == ["init", "migrate", "token"] and "--data-dir" in nodes[""].words
    assert nodes["keys"].words[:2] == ["create", "link"]
    assert nodes["webhooks list"].values["--state"] == ["pending", "delivered", "dead"]
    assert nodes["keys create"].values["--principal"] == []  # a value, no fixed choices: files are offered
    assert "--json" not in nodes["keys create"].values  # a flag takes no value
    assert set(nodes) == {"", *(" ".join(path) for path in _paths(build_parser()))}


def _paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += [(*path, name), *_paths(child, (*path, name))]
    return found


def test_each_script_is_valid_for_its_shell(scripts: dict[str, Path]) -> None:
    for shell, check in (("bash", ["-n"]), ("zsh", ["-n"]), ("fish", ["--no-execute"])):
        done = subprocess.run([_shell(shell), *check, str(scripts[shell])], capture_output=True, text=True)
        assert (shell, done.returncode, done.stderr) == (shell, 0, "")


BASH_COMPLETE = """
source "$1"; shift
read -ra COMP_WORDS <<< "$*"
[[ "$*" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_gatewayctl
printf '%s\\n' "${COMPREPLY[@]}"
"""


def _bash(script_path: Path, line: str) -> list[str]:
    done = subprocess.run([_shell("bash"), "-c", BASH_COMPLETE, "complete", str(script_path), line],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.split()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("gatewayctl ke", ["keys"]),
        ("gatewayctl keys cr", ["create"]),
        ("gatewayctl keys create --pr", ["--principal"]),
        ("gatewayctl --data-dir /srv/gw doc", ["doctor"]),  # a global option's value is not a command
        ("gatewayctl webhooks list --state d", ["delivered", "dead"]),
        ("gatewayctl completion ", ["--help", "bash", "zsh", "fish"]),
        ("gatewayctl media ", ["put", "revoke-links", "show", "delete", "--help"]),
    ],
)
def test_bash_completes_commands_options_and_choices(scripts: dict[str, Path], line: str, expected: list[str]) -> None:
    assert _bash(scripts["bash"], line) == expected


def test_bash_offers_files_for_an_option_value(scripts: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text("")
    assert _bash(scripts["bash"], f"gatewayctl doctor --config {tmp_path}/gate") == [f"{tmp_path}/gateway.toml"]


ZSH_COMPLETE = """
compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }
_files() { print -- '<files>' }
source "$1"; shift
words=(${=1})
[[ $1 == *' ' ]] && words+=('')
CURRENT=${#words}
_gatewayctl
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("gatewayctl keys ", ["create", "link", "export-secret", "list", "show", "revoke", "publish-cloudfront",
                              "unpublish-cloudfront", "rotate", "--help"]),
        ("gatewayctl webhooks list --state ", ["pending", "delivered", "dead"]),
        ("gatewayctl doctor --config ", ["<files>"]),
    ],
)  # fmt: skip
def test_zsh_offers_what_may_follow(scripts: dict[str, Path], line: str, expected: list[str]) -> None:
    done = subprocess.run([_shell("zsh"), "-f", "-c", ZSH_COMPLETE, "complete", str(scripts["zsh"]), line],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.split() == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("gatewayctl ke", ["keys"]),
        ("gatewayctl keys create --pri", ["--principal"]),
        ("gatewayctl webhooks list --state ", ["dead", "delivered", "pending"]),
        ("gatewayctl --data-dir /srv/gw subj", ["subject"]),
    ],
)
def test_fish_completes_as_a_user_would_see_it(scripts: dict[str, Path], line: str, expected: list[str]) -> None:
    done = subprocess.run([_shell("fish"), "--no-config", "-c", f"source {scripts['fish']}; complete -C '{line}'"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert sorted(entry.split("\t")[0] for entry in done.stdout.splitlines()) == expected


def test_a_new_command_completes_without_touching_the_scripts() -> None:
    parser = argparse.ArgumentParser(prog="gatewayctl")
    sub = parser.add_subparsers()
    sub.add_parser("frobnicate", help="x").add_argument("--level", choices=["low", "high"], help="y")
    text = script("bash", parser)
    assert "'') echo 'frobnicate --help'" in text and "'frobnicate|--level') echo 'low high'" in text


def test_zsh_completes_when_autoloaded_from_fpath(scripts: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "_gatewayctl").write_text(scripts["zsh"].read_text())  # the other way to install it
    driver = f"""fpath=({tmp_path} $fpath)
compadd() {{ [[ $1 == -- ]] && shift; print -l -- "$@" }}
autoload -U _gatewayctl
words=(gatewayctl subject '')
CURRENT=3
_gatewayctl"""
    done = subprocess.run([_shell("zsh"), "-f", "-c", driver], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["export", "erase", "--help"]
