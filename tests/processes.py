"""Real ``gatewayctl`` processes for end-to-end tests: commands, and ``serve`` with its log watched.

``serve`` writes its output to a file beside the data directory; the file is
watched (tests/servicelogs.py), so a failing test shows the server's last
lines. Readiness is an event (``/readyz`` answers), never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import servicelogs

GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]
READY_WITHIN = 30.0  # seconds; a loaded CI machine, with other workers starting servers too


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ctl(data_dir: Path, *argv: str, env: Mapping[str, str] | None = None) -> Any:
    """``gatewayctl ARGV --data-dir DATA_DIR --json`` in its own process; its parsed output (it must succeed)."""
    done = subprocess.run([*GATEWAYCTL, *argv, "--data-dir", str(data_dir), "--json"], capture_output=True,
                          text=True, env=None if env is None else {**os.environ, **env})  # fmt: skip
    assert done.returncode == 0, f"gatewayctl {' '.join(argv)} exited {done.returncode}: {done.stderr}"
    return json.loads(done.stdout)


def init(data_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """``gatewayctl init`` in its own process, as an operator runs it (keeps a gateway.toml already there)."""
    done = subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(data_dir)], capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})  # fmt: skip
    assert done.returncode == 0, f"gatewayctl init exited {done.returncode}: {done.stderr}"
    return data_dir


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> str:
        """Signal the server, wait for it to exit; its whole output."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"gatewayctl serve did not exit within {timeout} s of signal {sig}") from None
        return self.output()


def start_serve(
    data_dir: Path,
    *argv: str,
    env: Mapping[str, str] | None = None,
    name: str = "gateway",
    ready: bool = True,
    port: int | None = None,
    open_files: int | None = None,
) -> Served:
    """``gatewayctl serve`` on a free loopback port, once it is ready (or at once: ``ready=False``, then
    ``wait_ready``). The caller stops it. ``open_files``: run it under ``ulimit -n OPEN_FILES``."""
    port = port or free_port()
    log = data_dir.parent / f"{data_dir.name}-serve-{port}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([*GATEWAYCTL, "serve", "--data-dir", str(data_dir), "--port", str(port), *argv],
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_file_limit(open_files),
                                env=None if env is None else {**os.environ, **env})  # fmt: skip
    servicelogs.watch(f"{name} (port {port})", log)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    if not ready:
        return served
    try:
        wait_ready(served)
    except BaseException:
        served.stop(signal.SIGKILL)
        raise
    return served


def _file_limit(open_files: int | None) -> Callable[[], None] | None:
    if open_files is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))


@contextmanager
def serving(
    data_dir: Path, *argv: str, env: Mapping[str, str] | None = None, name: str = "gateway"
) -> Iterator[Served]:
    served = start_serve(data_dir, *argv, env=env, name=name)
    try:
        yield served
    finally:
        served.stop()


def wait_ready(served: Served) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise RuntimeError(f"gatewayctl serve exited {served.proc.returncode}: {served.output()}")
        try:
            with urllib.request.urlopen(served.base + "/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # polling for the event (a listening, ready server), not waiting for time to pass
    raise RuntimeError(f"gatewayctl serve was not ready within {READY_WITHIN} s: {served.output()}")


def wait_until(check: Any, what: str, timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something truthy; that value. Fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {found!r})")
        time.sleep(every)


def http_json(
    url: str, method: str = "GET", body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; an error status is an answer, not an exception."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
