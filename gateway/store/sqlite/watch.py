"""Noticing another process's change to a SQLite database within milliseconds, at no cost while idle.

SQLite cannot notify. The state sync polls the change feed every 250 ms; this watcher makes a revocation
by ``gatewayctl`` (another process) reach the view within a few milliseconds. It used to read the feed's
head every 5 ms, which kept an idle ``serve`` at 2-4 % of a core (issue 18). Every commit, from any
process, writes the database's write-ahead log, so on Linux the watcher sleeps in ``inotify`` until the
``-wal`` file (or one created in its place) is written, then reads the head — at most once per
``_COALESCE`` seconds however many commits land, and once more ``_RECHECK`` later if it had not moved yet —
so a busy writer costs what the old poll did and an idle database costs nothing. The state sync's own poll
remains the bound if a notification is ever missed. Where inotify is unavailable it polls every
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
_COALESCE = 0.005  # after a write: let the burst land, then read the head once
# The log is written before the commit completes (fsync, then the shared index, which raises no event):
# a read 5 ms after the write may come too early, so a read that found nothing new is made once more.
_RECHECK = 0.03
_IN_MODIFY, _IN_CREATE, _IN_MOVED_TO = 0x2, 0x100, 0x80
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


class _Inotify:
    """A watch on one directory for writes to one file name in it (the file may be replaced)."""

    def __init__(self, directory: Path, name: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self._fd, os.fsencode(directory), _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
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


def _inotify(path: Path) -> _Inotify | None:
    wal = path.with_name(path.name + "-wal")
    try:
        return _Inotify(wal.parent, wal.name)
    except (OSError, AttributeError) as exc:  # not Linux, or out of watches: poll instead
        log.info("change-feed watcher polls every %.0f ms (no inotify: %s)", POLL_EVERY * 1000, exc)
        return None


class _Cause(enum.Enum):
    """Why the watcher reads the feed head."""

    WRITTEN = "the log was written"
    RECHECK = "a write showed nothing new yet"
    POLLED = "no inotify: the poll is due"
    STOP = "closing"


class HeadWatcher:
    """Reads ``max(seq)`` of the change feed (one indexed read, in its own thread) when the database may have
    changed, and wakes the state sync when it moved."""

    def __init__(self, path: Path, wake: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self._path = path
        self._wake = wake
        self._loop = loop
        self._stop = threading.Event()
        self._stop_read, self._stop_write = os.pipe()
        self._inotify = _inotify(path)
        self._recheck = False
        self.reads = 0  # reads of the feed head: what the watcher costs
        self.sleeping = threading.Event()  # set while it waits for a write with no timeout: idle costs nothing
        self._thread = threading.Thread(target=self._run, name="change-feed-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        seen: int | None = None
        try:
            while (cause := self._changed()) is not _Cause.STOP:
                try:
                    head = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
                except sqlite3.Error:
                    continue  # the sync's own polls fail too, and the view goes stale: fail closed there
                self.reads += 1
                # Once, after a write that showed nothing new yet; a recheck that finds nothing waits for the next
                # write (rechecking after every recheck kept an idle serve reading 28 times a second).
                self._recheck = cause is _Cause.WRITTEN and head == seen
                if head != seen:
                    seen = head
                    self._loop.call_soon_threadsafe(self._wake)
        finally:
            conn.close()

    def _changed(self) -> _Cause:
        """Block until the database may have changed, and say why; STOP when closing."""
        if self._inotify is None:
            return _Cause.STOP if self._stop.wait(POLL_EVERY) else _Cause.POLLED
        if self._stop.wait(_COALESCE):
            return _Cause.STOP
        timeout = _RECHECK if self._recheck else None
        while not self._inotify.written():
            if timeout is None:
                self.sleeping.set()
            ready, _, _ = select.select([self._inotify.fileno(), self._stop_read], [], [], timeout)
            self.sleeping.clear()
            if self._stop_read in ready:
                return _Cause.STOP
            if not ready:
                return _Cause.RECHECK
        return _Cause.WRITTEN

    async def close(self) -> None:
        self._stop.set()
        os.write(self._stop_write, b"x")
        await asyncio.to_thread(self._thread.join)
        for fd in (self._stop_read, self._stop_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._inotify is not None:
            self._inotify.close()
