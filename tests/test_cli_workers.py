"""``gatewayctl serve --workers N`` fails as plain ``serve`` does, and says what it does (issue 19, items 1 and 10).

Real processes: the supervising parent forks its workers, so only a process of its own shows what a user
sees — the exit code, the one line on stderr, "serving on" and "stopping".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.config import Config

pytestmark = pytest.mark.e2e
GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]
STOPPING = (
    "gatewayctl serve: stopping: no new connections, finishing requests in flight (up to 30 s), then the last "
    "audit group and checkpoint\n"
)


def _serve(config: Config, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``serve`` expected to exit by itself; one that serves instead fails the test, its workers stopped too."""
    proc = subprocess.Popen([*GATEWAYCTL, "serve", "--data-dir", str(config.data_dir), *argv], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, out, err


@contextmanager
def _holder(share: bool) -> Iterator[int]:
    """A listening socket on a free port; ``share``: with SO_REUSEPORT, as another gateway's workers hold it."""
    with socket.socket() as held:
        if share:
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        yield held.getsockname()[1]


@pytest.mark.parametrize("share", [False, True], ids=["plain-holder", "reuseport-holder"])
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["serve", "serve-workers-2"])
def test_a_port_in_use_exits_69_with_one_message_workers_or_not(
    config: Config, share: bool, workers: list[str]
) -> None:
    with _holder(share) as port:
        got = _serve(config, "--port", str(port), *workers)
    assert got == (69, "", f"gatewayctl: cannot listen on 127.0.0.1:{port}: the address is already in use\n")


def test_a_worker_that_cannot_start_fails_serve_with_the_error_plain_serve_gives(
    config: Config, tmp_path: Path
) -> None:
    typo = tmp_path / "nonexistent-dir" / "typo.db"
    env = {"GATEWAY_DATABASE_URL": f"sqlite:///{typo}"}
    plain = _serve(config, "--port", "0", env=env)
    message = f"gatewayctl: database {typo} does not exist: check database.url, or run 'gatewayctl init' to create it\n"
    assert plain == (78, "", message)
    assert _serve(config, "--port", "0", "--workers", "2", env=env) == plain
    assert not typo.parent.exists()


def test_workers_listen_refuse_a_second_set_and_say_when_they_stop(config: Config) -> None:
    first = subprocess.Popen([*GATEWAYCTL, "serve", "--data-dir", str(config.data_dir), "--port", "0",
                              "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    try:
        assert first.stdout is not None
        line = first.stdout.readline()  # only once every worker listens
        url = line.split(" serving on ")[-1].split(" with ")[0]
        assert line == f"gateway (development) serving on {url} with 2 workers\n"
        with urllib.request.urlopen(url + "/readyz", timeout=10) as ready:
            assert ready.status == 200
        port = url.rsplit(":", 1)[1]
        second = _serve(config, "--port", port, "--workers", "2")
        assert second == (69, "", f"gatewayctl: cannot listen on 127.0.0.1:{port}: the address is already in use\n")
    finally:
        first.send_signal(signal.SIGINT)
        try:
            out, err = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
    assert (first.returncode, out, err) == (0, STOPPING, "")
