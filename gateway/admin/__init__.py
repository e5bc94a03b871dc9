"""Administrative changes: principals and credentials, keys, grants and media items.

Each change and its audit record commit in one transaction, so the log never
misses a change and never records one that did not happen; the store adds the
change-feed entry that tells every replica (``gateway.state``). Used by the CLI
and by the HTTP media API alike. One module per concept; ``Admin`` is all of them.
"""

from __future__ import annotations

from gateway.admin.grants import MAX_GRANT_SECONDS, GrantAdmin
from gateway.admin.keys import KeyAdmin
from gateway.admin.media import MediaAdmin
from gateway.admin.principals import NewCredential, NewPrincipal, PrincipalAdmin, new_credential

__all__ = ["MAX_GRANT_SECONDS", "Admin", "NewCredential", "NewPrincipal", "new_credential"]


class Admin(PrincipalAdmin, KeyAdmin, GrantAdmin, MediaAdmin):
    """Every administrative change, in one object the CLI and the web layer share."""
