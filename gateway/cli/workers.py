"""``gatewayctl serve --workers N``: the supervising parent and its forked workers.

The parent forks N workers, each serving on sockets of its own (``SO_REUSEPORT``
on one port), and says "serving on" only once every worker has told it,
through a pipe, that it listens. A worker that cannot start (a database it
cannot open, a certificate it cannot load) writes its error into the pipe
instead, and the parent stops the others and fails with that very error, so
``serve --workers N`` exits with the message and exit code plain ``serve``
would have given.

After that the parent only supervises: it forwards SIGINT, SIGTERM and SIGHUP
to every worker, says once that it is stopping, and when a worker dies it
stops the others and exits with that worker's status, so a service manager
restarts the whole set rather than serving on with fewer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from gateway import errors
from gateway.cli.output import printable
from gateway.errors import GatewayError

# A worker's own work: serve until signalled; call ``ready`` once listening.
Work = Callable[[int, Callable[[], None]], None]
_READY = b"ready"
EXIT_WORKER_FAILED = 69  # a worker that failed after start-up: the service is unavailable
_EXIT_CRASHED = 1


def _error_named(name: str) -> type[GatewayError]:
    """The exception class a worker reported by name (its message is re-raised in the parent)."""
    kind = getattr(errors, name, None)
    return kind if isinstance(kind, type) and issubclass(kind, GatewayError) else GatewayError


class Workers:
    """Forked workers, the pipes they report start-up through, and their supervision."""

    def __init__(self, stopping: Callable[[], None]) -> None:
        self._stopping = stopping  # says what a stop does, once
        self._reports: dict[int, int] = {}  # pid -> read end of its start-up pipe
        self.pids: list[int] = []
        self.stopped = False

    def start(self, index: int, work: Work) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            for fd in (read_end, *self._reports.values()):
                os.close(fd)
            _child(index, work, write_end)
        os.close(write_end)
        self.pids.append(pid)
        self._reports[pid] = read_end

    def supervise_signals(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP and not self.stopped:
            self.stopped = True
            self._stopping()
        self.forward(signum)

    def forward(self, signum: int) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def wait_ready(self) -> GatewayError | None:
        """Block until every worker listens; the first start-up error a worker reported, if any."""
        failure: GatewayError | None = None
        for pid, read_end in list(self._reports.items()):
            report = _read_all(read_end)
            os.close(read_end)
            del self._reports[pid]
            if report == _READY or failure is not None or self.stopped:
                continue
            name, _, message = report.decode("utf-8", "replace").partition("\n")
            failure = _error_named(name)(message) if message else None
            if failure is None:  # it died without a word (its own traceback is on stderr)
                failure = errors.Unavailable(f"serve: a worker exited before it listened ({_status(pid)})")
        return failure

    def stop(self) -> None:
        self.forward(signal.SIGTERM)

    def wait(self) -> int:
        """Until every worker has exited; the status of the first that failed (0 if none did)."""
        status = 0
        remaining = set(self.pids)
        while remaining:
            pid, raw = os.wait()
            remaining.discard(pid)
            code = os.waitstatus_to_exitcode(raw)
            if code and not status:
                status = code if code > 0 else 128 - code
                self.stop()  # one worker down: stop the set, let the service manager restart it
        return status


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _status(pid: int) -> str:
    try:
        _, raw = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "status unknown"
    return f"status {os.waitstatus_to_exitcode(raw)}" if raw else "still running"


def _child(index: int, work: Work, report: int) -> NoReturn:
    """Run ``work`` in the forked worker; report start-up through ``report``; exit, never return."""
    told = False

    def ready() -> None:
        nonlocal told
        os.write(report, _READY)
        os.close(report)
        told = True

    code = 0
    try:
        work(index, ready)
    except GatewayError as exc:
        code = EXIT_WORKER_FAILED
        if told:
            print(printable(f"gatewayctl serve (worker {index}): {exc.message}"), file=sys.stderr, flush=True)
        else:  # the parent says it, once, as plain serve would
            os.write(report, f"{type(exc).__name__}\n{exc.message}".encode())
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = _EXIT_CRASHED
    finally:
        os._exit(code)
