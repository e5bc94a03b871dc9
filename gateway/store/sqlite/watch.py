"""Noticing another process's change to a SQLite database within milliseconds, at no cost while idle or busy.

SQLite cannot notify. The state sync polls the change feed every 250 ms; this watcher makes a revocation
by ``gatewayctl`` (another process) reach the view within a few milliseconds. It used to read the feed's
head every 5 ms, which kept an idle ``serve`` at 2-4 % of a core; then it slept in ``inotify`` until the
database's write-ahead log was written, which every commit does — under issuance load every audit group
commit woke it, ≈ 150 reads of the head a second, ≈ 3 % of the serving core (issue 18). Now a transaction
that appends to the change feed announces its commit (``announce``: one byte written to ``<database>-feed``
after the COMMIT returns), and the watcher sleeps in ``inotify`` until that file is written, then reads the
head once: the commit is complete by then, so no second look is needed, and no other write wakes it. A
process that commits without announcing (one killed between its COMMIT and the write, an older release) is
caught by the state sync's own poll, which remains the bound. Where inotify is unavailable it polls every
``POLL_EVERY`` seconds as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import logging
import os
import select
import sqlite3
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("gateway.store.sqlite")
POLL_EVERY = 0.005  # without inotify
# One event per announcement (its close after the write): creating the file and writing it would be two.
_IN_CLOSE_WRITE, _IN_MOVED_TO = 0x8, 0x80
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


class _Inotify:
    """A watch on one directory for writes to one file name in it (the file may be replaced)."""

    def __init__(self, directory: Path, name: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self._fd, os.fsencode(directory), _IN_CLOSE_WRITE | _IN_MOVED_TO) < 0:
            errno = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(errno, f"inotify_add_watch {directory}")
        self._name = os.fsencode(name)

    def fileno(self) -> int:
        return int(self._fd)

    def written(self) -> bool:
        """Drain pending events: whether any named the file."""
        found = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                found = found or name == self._name
                offset += _EVENT.size + length

    def close(self) -> None:
        os.close(self._fd)


def announcement(path: Path) -> Path:
    """The file whose writes announce a change-feed commit to the database at ``path``."""
    return path.with_name(path.name + "-feed")


def announce(path: Path) -> None:
    """Tell every watcher of the database at ``path`` that a change-feed commit completed (call after COMMIT).

    Best effort: the commit stands whatever happens here, and a watcher that misses it is bounded by the state
    sync's poll. The file takes the database's permissions (whoever may write one may write the other)."""
    target = announcement(path)
    try:
        mode = path.stat().st_mode & 0o666
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
        try:
            os.pwrite(fd, b"\n", 0)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not announce a change to other processes (%s): they see it within a poll", exc)


def _inotify(path: Path) -> _Inotify | None:
    target = announcement(path)
    try:
        return _Inotify(target.parent, target.name)
    except (OSError, AttributeError) as exc:  # not Linux, or out of watches: poll instead
        log.info("change-feed watcher polls every %.0f ms (no inotify: %s)", POLL_EVERY * 1000, exc)
        return None


class _Cause(enum.Enum):
    """Why the watcher reads the feed head."""

    ANNOUNCED = "a change-feed commit was announced"
    POLLED = "no inotify: the poll is due"
    STOP = "closing"


class HeadWatcher:
    """Reads ``max(seq)`` of the change feed (one indexed read, in its own thread) when a change was announced,
    and wakes the state sync when it moved."""

    def __init__(self, path: Path, wake: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self._path = path
        self._wake = wake
        self._loop = loop
        self._stop = threading.Event()
        self._stop_read, self._stop_write = os.pipe()
        self._inotify = _inotify(path)
        self.reads = 0  # reads of the feed head: what the watcher costs
        self.sleeping = threading.Event()  # set while it waits for a write with no timeout: idle costs nothing
        self._thread = threading.Thread(target=self._run, name="change-feed-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        seen: int | None = None
        try:
            while self._changed() is not _Cause.STOP:
                try:
                    head = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
                except sqlite3.Error:
                    continue  # the sync's own polls fail too, and the view goes stale: fail closed there
                self.reads += 1
                if head != seen:
                    seen = head
                    self._loop.call_soon_threadsafe(self._wake)
        finally:
            conn.close()

    def _changed(self) -> _Cause:
        """Block until a change may have been committed, and say why; STOP when closing."""
        if self._inotify is None:
            return _Cause.STOP if self._stop.wait(POLL_EVERY) else _Cause.POLLED
        while not self._inotify.written():  # a burst of announcements is drained here: one read for all of it
            self.sleeping.set()
            ready, _, _ = select.select([self._inotify.fileno(), self._stop_read], [], [])
            self.sleeping.clear()
            if self._stop_read in ready:
                return _Cause.STOP
        return _Cause.ANNOUNCED

    async def close(self) -> None:
        self._stop.set()
        os.write(self._stop_write, b"x")
        await asyncio.to_thread(self._thread.join)
        for fd in (self._stop_read, self._stop_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._inotify is not None:
            self._inotify.close()
