"""The logs of the services a test started (gateway, nginx, PostgreSQL): their tails go into a failing test's report.

A test (or its fixture) calls ``watch(name, path)`` when it starts a service
whose log is a file; what the file gains from then on is what the report
shows under ``service log: <name>`` if the test fails (tests/conftest.py's
``pytest_runtest_makereport``). Nothing is read while tests pass.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 60
# Debian's clusters log to this file (pg_ctlcluster); GATEWAY_TEST_POSTGRES may name a server elsewhere.
POSTGRESQL_LOGS = "/var/log/postgresql/postgresql-*-main.log"


@dataclass(frozen=True)
class _Watched:
    name: str
    path: Path
    offset: int


_watched: list[_Watched] = []


def watch(name: str, path: Path) -> None:
    """Report ``path``'s lines written from now on under ``name`` if the current test fails."""
    offset = path.stat().st_size if path.exists() else 0
    _watched.append(_Watched(name, path, offset))


def watch_postgresql() -> None:
    for found in sorted(glob.glob(POSTGRESQL_LOGS)):
        watch(f"postgresql ({found})", Path(found))


def forget_all() -> None:
    _watched.clear()


def tails() -> list[tuple[str, str]]:
    """(section title, the last lines each watched log gained during the test)."""
    sections = []
    for watched in _watched:
        text = _read_from(watched.path, watched.offset)
        if text is None:
            sections.append((f"service log: {watched.name}", f"({watched.path} could not be read)"))
            continue
        lines = text.splitlines()
        shown = "\n".join(lines[-TAIL_LINES:]) or "(nothing written during the test)"
        cut = f"(last {TAIL_LINES} of {len(lines)} lines of {watched.path})\n" if len(lines) > TAIL_LINES else ""
        sections.append((f"service log: {watched.name}", cut + shown))
    return sections


def _read_from(path: Path, offset: int) -> str | None:
    try:
        with path.open("rb") as log:
            log.seek(offset if log.seek(0, 2) >= offset else 0)  # a rotated log starts again at 0
            return log.read().decode("utf-8", "replace")
    except OSError:
        return None
