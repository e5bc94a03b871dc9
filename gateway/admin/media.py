"""Media items: put, delete, revoke their links; the paths and prefixes they claim.

A prefix-scoped URL (one token for every HLS/DASH segment) covers a whole
directory, so a rendition may have one only for a directory its item owns
alone: the store refuses an item whose prefix would cover another item's
paths, or whose paths lie under another item's prefix. A directory named after
the item (``/v/intro/`` for ``intro``) is claimed by default; other layouts
name their prefix explicitly, or have none.

Links: revoking an item's links, narrowing who may see it (private after
unlisted, another owner or workspace) or deleting it stamps
``links_revoked_at``; URLs issued before it stop verifying everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from gateway.admin.base import AdminBase
from gateway.audit import records as audit
from gateway.audit.records import AuditEvent, RequestContext
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.model import (
    MediaItem,
    Rendition,
    Visibility,
    audience_narrowed,
    check_name,
    default_prefixes,
)
from gateway.signing.path_tokens import check_not_reserved
from gateway.signing.paths import canonical_path, canonical_prefix
from gateway.store.base import Repos


def _explicit_prefixes(paths: Mapping[Rendition, str], prefixes: Mapping[Rendition, str]) -> dict[Rendition, str]:
    checked: dict[Rendition, str] = {}
    for rendition, prefix in prefixes.items():
        canonical = canonical_prefix(prefix)
        path = paths.get(rendition)
        if path is None:
            raise InvalidInput(f"prefix for {rendition.value}: the item has no {rendition.value} rendition")
        if canonical == "/" or not path.startswith(canonical):
            raise InvalidInput(f"prefix {canonical} for {rendition.value} must be a directory above {path}, not /")
        checked[rendition] = canonical
    return checked


async def _claimable(tx: Repos, item: MediaItem, explicit: bool) -> MediaItem:
    """``item`` with the prefixes it may claim; Conflict when its paths or explicit prefixes overlap others'."""
    overlaps = await tx.media.overlapping(item)
    if overlaps and not explicit:
        # A default claim that would overlap is simply not made: the item gets no prefix there.
        item = dataclasses.replace(item, prefixes={})
        overlaps = await tx.media.overlapping(item)
    if overlaps:
        other, path = overlaps[0]
        raise Conflict(f"{path} of media item {other!r} overlaps this item's paths or prefixes")
    return item


class MediaAdmin(AdminBase):
    async def put_media(
        self,
        ctx: RequestContext,
        media_id: str,
        owner: str,
        workspace: str,
        visibility: Visibility,
        paths: Mapping[Rendition, str],
        now: float,
        prefixes: Mapping[Rendition, str] | None = None,
    ) -> MediaItem:
        """Create or replace an item. ``prefixes`` None: the default claim; ``{}``: no prefix scope."""
        if not paths:
            raise InvalidInput("a media item needs at least one rendition path")
        media_id = check_name(media_id, "media id")
        # Under /_t/ a URL would read as a native path token (gateway.signing.path_tokens).
        canonical = {r: check_not_reserved(canonical_path(p)) for r, p in paths.items()}
        claimed = default_prefixes(media_id, canonical) if prefixes is None else _explicit_prefixes(canonical, prefixes)
        item = MediaItem(
            id=media_id, owner=check_name(owner, "owner"), workspace=check_name(workspace, "workspace"),
            visibility=visibility, paths=canonical, updated_at=now, prefixes=claimed,
        )  # fmt: skip
        async with self._changing() as tx:
            item = await _claimable(tx, item, explicit=prefixes is not None)
            before = await tx.media.get(media_id)
            narrowed = before is not None and not before.deleted and audience_narrowed(before, item)
            revoked_at = now if narrowed else (before.links_revoked_at if before else None)
            item = dataclasses.replace(item, links_revoked_at=revoked_at)
            if narrowed:
                await tx.media.revoke_links(media_id, now)  # the paths it had: their links stop, moved or not
            given_up = _given_up(before, item)
            if given_up and not narrowed:
                # The item moved: another item may claim these next, and must not inherit links to them.
                await tx.media.revoke_claims(media_id, given_up, now)
            await tx.media.put(item)
            if narrowed:
                await tx.media.revoke_links(media_id, now)  # and the paths it has now
            detail = {"workspace": workspace, "visibility": visibility.value, "links_revoked": narrowed,
                      "prefixes": {r.value: p for r, p in sorted(item.prefixes.items())}}  # fmt: skip
            # The owner is a viewer: the audit log stores it pseudonymised (gateway.audit.log).
            record = audit.change(ctx, AuditEvent.MEDIA_PUT, now=now, media_id=media_id, subject=owner, detail=detail)
            await self._log.append(tx, [record], now)
        return item

    async def delete_media(self, ctx: RequestContext, media_id: str, now: float) -> None:
        async with self._changing() as tx:
            item = await tx.media.get(media_id)
            if item is None or item.deleted:
                raise NotFound(f"no media item {media_id!r}")
            await tx.media.delete(media_id, now)
            record = audit.change(ctx, AuditEvent.MEDIA_DELETED, now=now, media_id=media_id)
            await self._log.append(tx, [record], now)

    async def revoke_links(self, ctx: RequestContext, media_id: str, reason: str, now: float) -> MediaItem:
        """Every URL issued for the item until now stops verifying; new ones are issued as before."""
        if not reason.strip():
            raise InvalidInput("revoking links needs a reason")
        async with self._changing() as tx:
            item = await tx.media.get(media_id)
            if item is None or item.deleted:
                raise NotFound(f"no media item {media_id!r}")
            await tx.media.revoke_links(media_id, now)
            record = audit.change(ctx, AuditEvent.MEDIA_LINKS_REVOKED, now=now, media_id=media_id, reason=reason)
            await self._log.append(tx, [record], now)
        return dataclasses.replace(item, links_revoked_at=now)


def _given_up(before: MediaItem | None, after: MediaItem) -> list[tuple[str, bool]]:
    """The (path, is_prefix) claims ``before`` had and ``after`` no longer has."""
    if before is None or before.deleted:
        return []
    old = {(path, False) for path in before.paths.values()} | {(p, True) for p in before.prefixes.values()}
    new = {(path, False) for path in after.paths.values()} | {(p, True) for p in after.prefixes.values()}
    return sorted(old - new)
