"""``python -m examples.demo`` removes its ``gateway-demo-*`` folder (keys, a CA, a database) however it ends
(issue 19, item 13): Ctrl-C while it serves, SIGTERM while it starts, a missing tool. ``--workdir`` keeps it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import examples.demo.__main__ as demo
from examples.demo.app import HLS_JS
from tests.conftest import require_service
from tests.nginx_server import nginx_binary
from tests.nginx_site import require_tool

ROOT = Path(__file__).parent.parent


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary directory, as the demo sees it (in this process and in its children)."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def _failing_run(error: BaseException) -> object:
    def run(workdir: Path, _port: int, _signing: object, _edge: bool = False) -> None:
        (workdir / "pki").mkdir(parents=True)
        (workdir / "pki" / "ca.key").write_text("a CA's private key")
        raise error

    return run


def test_ctrl_c_during_start_up_removes_the_folder(
    temp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "run", _failing_run(KeyboardInterrupt()))
    assert demo.main([]) == 130
    assert list(temp.iterdir()) == []
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "demo: stopped" and out[-2].startswith(f"demo: removed {temp}/gateway-demo-")


def test_a_missing_tool_removes_the_folder(temp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "run", _failing_run(SystemExit("demo: missing ffmpeg (apt-get install ffmpeg)")))
    with pytest.raises(SystemExit, match="missing ffmpeg"):
        demo.main([])
    assert list(temp.iterdir()) == []


def test_a_workdir_named_by_the_user_is_kept(temp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "run", _failing_run(KeyboardInterrupt()))
    assert demo.main(["--workdir", str(tmp_path / "mine")]) == 130
    assert (tmp_path / "mine" / "pki" / "ca.key").exists() and list(temp.iterdir()) == []


# --- the real process, signalled as a terminal or a service manager would -------------------------


@pytest.fixture
def spawn(temp: Path) -> Iterator[subprocess.Popen[str]]:
    nginx_binary()
    require_tool("ffmpeg", "apt-get install -y ffmpeg")
    if not HLS_JS.exists():
        require_service("hls.js (npm ci --prefix examples/demo)")
    proc = subprocess.Popen([sys.executable, "-m", "examples.demo"], cwd=ROOT, text=True, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert proc.poll() is None and time.monotonic() < deadline, "the demo stopped, or never got there"
        time.sleep(0.01)


@pytest.mark.e2e
def test_ctrl_c_while_serving_removes_the_folder(spawn: subprocess.Popen[str], temp: Path) -> None:
    assert spawn.stdout is not None
    lines = [spawn.stdout.readline() for _ in range(2)]
    assert lines[1].startswith("demo-ready "), lines
    [folder] = temp.iterdir()
    assert (folder / "gateway" / "keys" / "master.key").exists() and (folder / "pki" / "ca.crt").exists()
    spawn.send_signal(signal.SIGINT)
    out, _ = spawn.communicate(timeout=60)
    assert (spawn.returncode, out) == (0, f"demo: removed {folder} (its keys and CA with it)\n")
    assert list(temp.iterdir()) == []


@pytest.mark.e2e
def test_sigterm_while_starting_removes_the_folder(spawn: subprocess.Popen[str], temp: Path) -> None:
    assert spawn.stdout is not None
    _wait_for(lambda: any(temp.glob("gateway-demo-*/gateway/gateway.toml")), spawn)  # start-up under way
    spawn.send_signal(signal.SIGTERM)
    out, _ = spawn.communicate(timeout=60)
    assert spawn.returncode == 130 and out.endswith("demo: stopped\n"), out
    assert list(temp.iterdir()) == []
