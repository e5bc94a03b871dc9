"""Owner-only files and directories: what the gateway writes holds secrets or personal data.

Directories are 0700 and files 0600 *whatever the process umask*: the mode is
given at creation (a umask can only remove bits) and set again with
``fchmod``/``chmod`` (so even an odd umask such as 0277 cannot leave a file
unusable or a different mode). Existing directories are left alone (the data
directory may be the user's working directory); existing files the gateway
owns are tightened by ``tighten``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700; directories that exist are kept as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            directory.mkdir(PRIVATE_DIR)
            os.chmod(directory, PRIVATE_DIR)


def _write_fd(fd: int, data: bytes) -> None:
    os.fchmod(fd, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def create_private(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600) holding ``data``; raises FileExistsError rather than overwrite."""
    private_dirs(path.parent)
    _write_fd(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), data)


def replace_private(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) atomically: a reader sees the old file or the whole new one."""
    private_dirs(path.parent)
    partial = path.with_name(path.name + ".partial")
    # O_TRUNC keeps the mode of a partial file left by a crash: _write_fd sets it again.
    _write_fd(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE), data)
    partial.replace(path)


def tighten(path: Path) -> None:
    """Make an existing file owner-only (files written by older versions were world-readable).

    A file owned by someone else cannot be changed and is left as it is.
    """
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, PRIVATE_FILE)
