"""One call to issue: what its items share, worked out once (who asks, for whom, when; the keys chosen so far;
the issuance ids, one CSPRNG read for the whole call). Every item is still judged on its own
(``gateway.signing.issuance``)."""

from __future__ import annotations

import secrets

from gateway.audit.records import ENGINEER, VIEWER, RequestContext
from gateway.model import Principal, PrincipalKind, Viewer
from gateway.signing.key_choice import CallKeys

_ID_BYTES = 12


class Call:
    """What one call's items share, worked out once: who asks, for whom, when; the keys chosen so far; the
    issuance ids, drawn from the CSPRNG in one read for the whole call (each is still 96 random bits)."""

    def __init__(
        self, principal: Principal, viewer: Viewer | None, ctx: RequestContext, now: float, erased: bool, items: int
    ) -> None:
        self.principal = principal
        self.viewer = viewer
        self.ctx = ctx
        self.now = now
        self.erased = erased
        self.subject = viewer.subject if viewer else None
        self.retention = ENGINEER if principal.kind is PrincipalKind.ENGINEER else VIEWER
        self.keys: CallKeys = {}
        self._ids = secrets.token_hex(_ID_BYTES * items)
        self._next_id = 0

    def issuance_id(self) -> str:
        at = self._next_id
        self._next_id += 2 * _ID_BYTES
        if at >= len(self._ids):  # never: at most one id per item
            return "gwi_" + secrets.token_hex(_ID_BYTES)
        return "gwi_" + self._ids[at : at + 2 * _ID_BYTES]
