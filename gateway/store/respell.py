"""Schema v7's data step: stored paths in the one spelling per file (docs/paths.md, rule 3).

Before v7 an escape of a character a path may hold literally (``%2C`` for
``,``) was kept, so ``/t/s,1.jpg`` and ``/t/s%2C1.jpg`` could be claimed by two
items although every origin serves one file for both. The migration respells
each stored path (``normalised_spelling``: it only decodes such escapes) and
refuses to run when two live items would then claim one file, naming them:
which one should keep it is the operator's call, made with the gateway version
still running.

Pure: each store's migration reads the rows, calls ``respell_media`` and
``respell_revocations``, and writes what they return.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.errors import StoreUnavailable
from gateway.signing.paths import normalised_spelling
from gateway.store.rows import ancestors


@dataclass(frozen=True)
class StoredMedia:
    id: str
    paths: Mapping[str, str]  # rendition -> path, as stored
    prefixes: Mapping[str, str]
    live: bool


@dataclass(frozen=True)
class Respelled:
    changed: list[StoredMedia] = field(default_factory=list)  # with their new spelling


def respell(path: str) -> str:
    return normalised_spelling(path)


def respell_media(items: Iterable[StoredMedia]) -> Respelled:
    """Every item whose paths or prefixes change; StoreUnavailable (the migration stops) on a shared file."""
    all_items = list(items)
    changed = []
    for item in all_items:
        paths = {r: respell(p) for r, p in item.paths.items()}
        prefixes = {r: respell(p) for r, p in item.prefixes.items()}
        if paths != dict(item.paths) or prefixes != dict(item.prefixes):
            changed.append(StoredMedia(item.id, paths, prefixes, item.live))
    if changed:
        by_id = {item.id: item for item in all_items} | {item.id: item for item in changed}
        _refuse_shared_files([item for item in changed if item.live], [i for i in by_id.values() if i.live])
    return Respelled(changed)


def _refuse_shared_files(changed: list[StoredMedia], live: list[StoredMedia]) -> None:
    claims = _Claims(live)
    clashes = sorted({clash for item in changed for clash in claims.clashes(item)})
    if clashes:
        listed = "; ".join(f"{a} and {b} ({path})" for a, b, path in clashes)
        raise StoreUnavailable(
            "schema v7 spells each file one way (docs/paths.md), and then two live media items claim one file: "
            f"{listed}. Give one of each pair another path (gatewayctl media put, with the gateway you run "
            "now), then run 'gatewayctl migrate' again."
        )


class _Claims:
    """Every live claim, for the overlap rules of ``MediaRepo.overlapping``: the same file, a file under
    another item's prefix, a prefix above another item's file or prefix."""

    def __init__(self, live: list[StoredMedia]) -> None:
        self._files: dict[str, set[str]] = {}
        self._prefixes: dict[str, set[str]] = {}
        for item in live:
            for path in item.paths.values():
                self._files.setdefault(path, set()).add(item.id)
            for prefix in item.prefixes.values():
                self._prefixes.setdefault(prefix, set()).add(item.id)
        self._sorted = sorted(set(self._files) | set(self._prefixes))

    def clashes(self, item: StoredMedia) -> set[tuple[str, str, str]]:
        found: set[tuple[str, str, str]] = set()
        for path in item.paths.values():
            found |= {(item.id, other, path) for other in self._files.get(path, set())}
        mine = [*item.paths.values(), *item.prefixes.values()]
        for above in ancestors(mine):
            found |= {(item.id, other, above) for other in self._prefixes.get(above, set())}
        for prefix in item.prefixes.values():
            start = bisect.bisect_left(self._sorted, prefix)
            for claimed in self._sorted[start:]:
                if not claimed.startswith(prefix):
                    break
                owners = self._files.get(claimed, set()) | self._prefixes.get(claimed, set())
                found |= {(item.id, other, claimed) for other in owners}
        return {(min(a, b), max(a, b), path) for a, b, path in found if a != b}


def update_values(item: StoredMedia) -> tuple[str, str, str]:
    """(paths JSON, prefixes JSON, id), as the stores write them (``rows.media_values``)."""
    return json.dumps(dict(item.paths), sort_keys=True), json.dumps(dict(item.prefixes), sort_keys=True), item.id


def claims(item: StoredMedia) -> list[tuple[str, str, bool]]:
    """(path, media id, is_prefix) rows of a live item's claims."""
    found = {(p, item.id, False) for p in item.paths.values()} | {(p, item.id, True) for p in item.prefixes.values()}
    return sorted(found)


def respell_revocations(rows: Iterable[tuple[str, bool, str, float]]) -> list[tuple[str, bool, str, float]]:
    """Link revocations (path, is_prefix, media id, at) in the new spelling; two rows that become one keep the
    later time (a revocation never moves earlier)."""
    merged: dict[tuple[str, bool, str], float] = {}
    for path, is_prefix, media_id, at in rows:
        key = (respell(path), is_prefix, media_id)
        merged[key] = max(at, merged.get(key, at))
    return [(path, is_prefix, media_id, at) for (path, is_prefix, media_id), at in sorted(merged.items())]
