"""Who may get a signed URL for which media rendition: one pure function.

The rules, in order (the first that decides wins):

1. a disabled principal, or one without ``sign``, is refused;
2. a principal limited to some renditions is refused the others;
3. a deleted item is refused to everyone;
4. asserting a viewer, or a viewer's address, without ``sign:on-behalf`` is
   refused;
5. the owner, a member of the item's workspace (``workspace`` visibility),
   and anyone for ``unlisted``/``public`` items are allowed;
6. an engineer with a live access grant for the item is allowed (the grant's
   reason is recorded);
7. everything else is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.frozen import quick_init
from gateway.model import (
    Grant,
    MediaItem,
    Permission,
    Principal,
    PrincipalKind,
    Rendition,
    Viewer,
    Visibility,
)


@quick_init
@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    grant: Grant | None = None


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def _allow(reason: str, grant: Grant | None = None) -> Decision:
    return Decision(True, reason, grant)


def principal_refusal(principal: Principal, rendition: Rendition) -> str | None:
    """Why ``principal`` may not sign ``rendition`` of anything (rules 1 and 2), or None."""
    if principal.disabled:
        return "principal-disabled"
    if not principal.has(Permission.SIGN):
        return "missing-permission:sign"
    if principal.renditions is not None and rendition not in principal.renditions:
        return "rendition-not-allowed"
    return None


def _viewer_decision(viewer: Viewer | None, media: MediaItem) -> Decision | None:
    if media.visibility is Visibility.PUBLIC:
        return _allow("public")
    if media.visibility is Visibility.UNLISTED:
        return _allow("unlisted")
    if viewer is None:
        return None
    if viewer.subject == media.owner:
        return _allow("owner")
    if media.visibility is Visibility.WORKSPACE and media.workspace in viewer.workspaces:
        return _allow("workspace-member")
    return None


def _grant_decision(principal: Principal, media: MediaItem, grants: Iterable[Grant], now: float) -> Decision | None:
    if principal.kind is not PrincipalKind.ENGINEER:
        return None
    for grant in grants:
        if grant.principal_id == principal.id and grant.media_id == media.id and grant.live(now):
            return _allow("grant", grant)
    return None


def decide(
    principal: Principal,
    viewer: Viewer | None,
    media: MediaItem,
    rendition: Rendition,
    grants: Iterable[Grant],
    now: float,
    viewer_address: bool = False,
) -> Decision:
    """Decide whether ``principal`` may sign ``rendition`` of ``media`` for ``viewer``.

    ``viewer_address``: the caller asserts the viewer's address (``viewer_ip``), which the audit record keeps.
    """
    refusal = principal_refusal(principal, rendition)
    if refusal is not None:
        return _deny(refusal)
    if media.deleted:
        return _deny("media-deleted")
    asserted = viewer_address or (viewer is not None and viewer.source == "asserted")
    if asserted and not principal.has(Permission.SIGN_ON_BEHALF):
        return _deny("missing-permission:sign:on-behalf")
    decision = _viewer_decision(viewer, media) or _grant_decision(principal, media, grants, now)
    return decision or _deny("not-permitted")
