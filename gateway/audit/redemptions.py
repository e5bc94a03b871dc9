"""Recording redemptions at ``/v1/verify``, aggregated per token and network.

Every segment of a stream is a verify call; logging each would dwarf the
issuance log. What forensics needs is where each signed URL was used from, so
the first redemption of a token (one signed URL, or one prefix token for
every segment under it) from each client network (/24 or /48) is logged;
repeats from the same network are not. It is written behind
(``gateway.audit.behind``): the verify answer does not wait for an fsync, and
a crash loses at most the last second of them. The memory of what was seen
is per process and bounded, so a restart or another replica may log a pair
again (harmless duplicates).
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.audit import records as audit
from gateway.audit.behind import WriteBehind
from gateway.audit.records import RequestContext
from gateway.netaddr import mask_ip
from gateway.store.base import RawEntry

_REMEMBERED = 100_000


class Redemptions:
    def __init__(self, behind: WriteBehind) -> None:
        self._behind = behind
        self._seen: OrderedDict[tuple[bytes, str | None], None] = OrderedDict()

    def first_from(self, token: bytes, client_ip: str | None) -> bool:
        """Whether ``token`` (a digest naming the signed URL or prefix token) has not been recorded from this
        client's network yet: the hot path's check."""
        key = (token, mask_ip(client_ip))
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        return True

    async def record(
        self, ctx: RequestContext, *, token: bytes, kid: str, url: str, expires: int, profile: str, now: float
    ) -> bool:
        """Log the redemption unless this token was already seen from this network; True if logged."""
        key = (token, mask_ip(ctx.client_ip))
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        # No subject to seal it under: the user agent stays in the raw log (kept 7 days), not in the audit log.
        record = audit.redeemed(ctx, now=now, kid=kid, url=url, expires_at=expires, profile=profile)
        raw = RawEntry(now, record.event.value, ctx.request_id, kid, ctx.client_ip, ctx.user_agent)
        if not self._behind.redemption(record, raw):
            return False  # dropped (the queue is full, counted in /metrics): a later request may log it
        self._seen[key] = None
        if len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        return True
