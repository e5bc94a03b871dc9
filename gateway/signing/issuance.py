"""Issuing signed URLs: authorise, sign, log durably, and only then return.

One call handles one or many items for one viewer. Every refused item yields
its own ``url:denied`` record; the URLs a call issues are one ``url:issued``
record, or, when it issued two or more, one ``url:issued_batch`` record listing
each (its digest, media, rendition, expiry and key: docs/audit.md, "Batch
records"), so a batch of 100 costs one leaf hash, one sealed blob and one audit
row plus 100 small index rows. All of a call's records commit in
one transaction (shared with concurrent calls: group commit). If that commit
fails no URL leaves this module (503). The raw technical log entries (full
address, user agent) follow within a second (``gateway.audit.behind``). A viewer whose data was erased gets
no URLs: issuing would start a new record of them.

What a call's items share is worked out once per call (``gateway.signing.calls``): the masked request fields of its one
record, the principal's key for each kind of profile (``gateway.signing.key_choice``), the issuance ids; every
item is still judged on its own (tests/test_batch_issuance.py holds a batch's answers and records to issuing
each item singly).

Principals, keys, grants and erased viewers come from the state view, media
items from its cache (``gateway.state``): no database read on the way, and a
process whose view is stale issues nothing (503 ``state_stale``). Every URL's
signature covers its issue time (native ``gw_iat``, or the format's start
time) so that a later link revocation can refuse it; a prefix-scoped URL is
signed for the directory its item owns, never a shared one.

Cache-friendly URLs (``signing.cache_window`` W seconds, 0: off): the issue
time is aligned down to the window, ``iat = floor(now / W) * W``, and the
expiry is ``iat + W + ttl``, so every request in one window for the same
item, rendition, scope, binding, profile and key gets the byte-identical URL
(the signatures are deterministic), and each lives at least ``ttl`` seconds
(at most ``ttl + W``). The issue time never passes the real moment of issue,
so a link or grant revocation at R still refuses every URL issued before R;
a URL issued after R in the window R fell in would align to ``iat <= R`` and
be refused from birth, so its issue time becomes the first second after R
instead (``_issue_time``). Each issuance still has its own audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from gateway.access.authz import Decision, decide
from gateway.audit import records as audit
from gateway.audit.batch import IssuedUrl, call_records
from gateway.audit.behind import WriteBehind
from gateway.audit.log import AuditBatcher, AuditLog, Pending
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext
from gateway.errors import Forbidden, GatewayError, InvalidInput, NotFound, StateStale
from gateway.frozen import quick_init
from gateway.keys.keyring import Keyring
from gateway.model import Grant, MediaItem, Principal, PrincipalKind, Rendition, Viewer
from gateway.netaddr import unmapped
from gateway.signing.calls import Call
from gateway.signing.dialects.base import SignRequest
from gateway.signing.key_choice import KeyChoices
from gateway.signing.paths import canonical_path
from gateway.signing.profiles import NATIVE, Profile, Profiles
from gateway.state.sync import StateSync
from gateway.store.base import RawEntry


@quick_init
@dataclass(frozen=True)
class SignItem:
    media_id: str
    rendition: Rendition
    ttl: int | None = None
    client_ip: str | None = None
    prefix: bool = False
    profile: str | None = None
    # The prefix token as a path segment (/_t/<token>/…): relative playlist URLs carry it with them.
    path_token: bool = False
    # Page URLs: when the item has no directory of its own for the rendition, or the caller may not have
    # everything in it, sign the file instead of refusing.
    or_file: bool = False


@quick_init
@dataclass(frozen=True)
class Issued:
    url: str
    expires: int
    kid: str
    issuance_id: str
    profile: str
    cookies: Mapping[str, str] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True)
class Outcome:
    item: SignItem
    issued: Issued | None = None
    error: GatewayError | None = None


@dataclass(frozen=True)
class IssuancePolicy:
    default_ttl: int
    max_ttl: int
    cache_window: int = 0


_TOUCH_EVERY = 60.0


class IssueLimits(Protocol):
    """Abuse limits (``gateway.limits.Limiter``): each check is O(1) in memory and raises RateLimited."""

    def admit(self, principal_id: str, items: int, now: float) -> None: ...
    def signing(self, kid: str, now: float) -> None: ...


class _Unlimited:
    def admit(self, principal_id: str, items: int, now: float) -> None:
        pass

    def signing(self, kid: str, now: float) -> None:
        pass


# What the metrics count per item: (outcome, reason, profile: None for the default).
Counted = tuple[str, str, str | None]


def _uncounted(counted: list[Counted]) -> None:
    pass


class Issuer:
    def __init__(
        self,
        state: StateSync,
        keyring: Keyring,
        profiles: Profiles,
        policy: IssuancePolicy,
        audit_log: AuditLog,
        batcher: AuditBatcher,
        behind: WriteBehind,
    ) -> None:
        self._state = state
        self._profiles = profiles
        self._policy = policy
        self._audit_log = audit_log
        self._batcher = batcher
        self._behind = behind
        self._touched: dict[str, float] = {}
        self.keys = KeyChoices(state, keyring)
        # Set by gateway.services: abuse limits, and the metrics' count of outcomes (both in memory, O(1)).
        self.limits: IssueLimits = _Unlimited()
        self.count: Callable[[list[Counted]], None] = _uncounted

    async def issue(
        self,
        principal: Principal,
        viewer: Viewer | None,
        items: list[SignItem],
        ctx: RequestContext,
        now: float,
    ) -> list[Outcome]:
        if not self._state.current():
            raise StateStale("this replica's view of keys and principals is stale: nothing is issued")
        self.limits.admit(principal.id, len(items), now)
        call = Call(principal, viewer, ctx, now, viewer is not None and self._erased(viewer.subject), len(items))
        outcomes: list[Outcome] = []
        logged: list[AuditRecord | IssuedUrl] = []
        for item in items:
            # The caller's own address is what the record keeps as client_ip: never the URL's binding.
            outcome, entry = await self._one(call, item)
            outcomes.append(outcome)
            logged.append(entry)
        records = call_records(ctx, now, call.subject, call.retention, logged)
        touches = self._due_touches({o.issued.kid for o in outcomes if o.issued}, now)
        await self._batcher.submit(Pending(records, now, touches=touches))
        self._behind.raw(_raw_entries(logged, ctx, now))  # the raw log may trail by a second; the audit may not
        self._touched.update((kid, now) for kid in touches)  # only once written: a failed commit retries next time
        self.count(_counted(items, logged))
        return outcomes

    def _erased(self, subject: str) -> bool:
        ref = self._audit_log.ref(subject)
        if ref not in self._state.view.erased:
            return False
        self._audit_log.forget(ref)  # its key was shredded: never seal under a cached copy
        return True

    def _due_touches(self, kids: set[str], now: float) -> list[str]:
        """Keys whose last_used is older than a minute: kept to the minute, not written per request."""
        return [kid for kid in sorted(kids) if now - self._touched.get(kid, float("-inf")) >= _TOUCH_EVERY]

    async def _one(self, call: Call, item: SignItem) -> tuple[Outcome, AuditRecord | IssuedUrl]:
        """One item, judged on its own (media, rendition, grant, revocations, profile, expiry): the call shares
        only who asks, for whom and when, and the key chosen for each kind of profile."""
        principal, viewer, now = call.principal, call.viewer, call.now
        try:
            if call.erased:
                raise Forbidden("this viewer's data has been erased", reason="subject-erased")
            profile = self._profiles.get(item.profile)
            ttl = self._ttl(item)
            item = _unmapped_binding(item)
            media = await self._media(item.media_id)
            asserts = call.ctx.viewer_ip is not None
            decision = self._authorise(principal, viewer, media, item, now, asserts)
            path = self._path(media, item.rendition)  # after authorising: which renditions exist is not for outsiders
            prefix = self._scope(principal, viewer, media, item, now, asserts) if item.prefix else None
            issued_at, lifetime = self._issue_time(now, ttl, (path, prefix or path), principal.id)
            expires = _expiry(issued_at, lifetime, decision.grant, profile, now)
            issued = await self._sign(call, profile, path, prefix, item, (issued_at, expires))
        except (Forbidden, NotFound, InvalidInput) as error:
            record = audit.denied(
                call.ctx, now=now, media_id=item.media_id, rendition=item.rendition.value,
                subject=call.subject, reason=error.reason, retention=call.retention,
            )  # fmt: skip
            return Outcome(item, error=error), record
        detail = {"issuance_id": issued.issuance_id, "profile": profile.name, "dialect": profile.dialect.name}
        if decision.grant:
            detail["grant_id"] = decision.grant.id
        url = IssuedUrl(
            kid=issued.kid, media_id=item.media_id, rendition=item.rendition.value, url=issued.url,
            expires_at=issued.expires, reason=decision.reason, detail=detail, bound_to=item.client_ip,
        )  # fmt: skip
        return Outcome(item, issued=issued), url

    async def _sign(
        self, call: Call, profile: Profile, path: str, prefix: str | None, item: SignItem, times: tuple[int, int]
    ) -> Issued:
        """Keyed formats sign with the principal's own key; shared-secret ones name it in a signed field."""
        now = call.now
        capabilities = profile.dialect.capabilities
        path_token = item.path_token and prefix is not None
        if path_token and not capabilities.path_token:
            raise InvalidInput(f"profile {profile.name} ({profile.dialect.name}) has no path tokens: use form 'query'")
        by_external = profile.keyed and profile.dialect.name != NATIVE  # as the verifier looks it up
        algorithms = capabilities.key_types if profile.keyed else None
        choice = await self.keys.choose(call.principal.id, call.now, (algorithms, by_external), call.keys)
        self.limits.signing(choice.row.kid, now)
        key = choice.material if profile.keyed else profile.secret
        if key is None:
            raise InvalidInput(f"profile {profile.name} has no signing secret")
        issued_at, expires = times
        # A signed start time is the issue time a link revocation is compared with (native: gw_iat).
        starts = issued_at if capabilities.starts and profile.dialect.name != NATIVE else None
        request = SignRequest(
            url=profile.base_url + path,
            expires=expires,
            starts=starts,
            ip=item.client_ip,
            prefix=prefix,
            attribution=None if profile.keyed else choice.row.kid,
            issued_at=issued_at,
            options=profile.options,
            path_token=path_token,
        )
        signed = profile.dialect.sign(request, key)
        return Issued(signed.url, expires, choice.row.kid, call.issuance_id(), profile.name, signed.cookies)

    def _issue_time(self, now: float, ttl: int, scope: tuple[str, str], principal_id: str) -> tuple[int, int]:
        """(issue time, lifetime from it): aligned to the cache window, never before a revocation it follows.

        The issue time is at most ``now``, so no URL issued before a revocation gets past it; one issued
        after a revocation R in R's own window takes ``int(R) + 1`` (when that second has begun), which the
        verifier accepts and which every later request of the window shares.
        """
        window = self._policy.cache_window
        if not window:
            return int(now), ttl
        start = int(now) // window * window
        issued_at = start
        revoked = self._revoked_at(scope, principal_id)
        if revoked is not None and issued_at <= revoked:
            issued_at = min(int(revoked) + 1, int(now))
        return issued_at, start + window + ttl - issued_at

    def _revoked_at(self, paths: tuple[str, str], principal_id: str) -> float | None:
        """The newest link or grant revocation the verifier would compare this URL's issue time with."""
        return self._state.view.newest_revocation(paths, principal_id)

    def _ttl(self, item: SignItem) -> int:
        ttl = self._policy.default_ttl if item.ttl is None else item.ttl
        if not 1 <= ttl <= self._policy.max_ttl:
            raise InvalidInput(f"ttl must be from 1 to {self._policy.max_ttl} seconds")
        return ttl

    async def _media(self, media_id: str) -> MediaItem:
        media = await self._state.media.get(media_id)
        if media is None or media.deleted:
            raise NotFound(f"no media item {media_id!r}")
        return media

    @staticmethod
    def _path(media: MediaItem, rendition: Rendition) -> str:
        path = media.paths.get(rendition)
        if path is None:
            raise NotFound(f"media item {media.id!r} has no {rendition.value} rendition")
        canonical = canonical_path(path)  # the verifier's rule (docs/paths.md), also for rows stored before it
        if canonical.endswith("/"):
            # A file token for a directory path would, in some formats, read as a directory token.
            raise InvalidInput(f"media item {media.id!r}: a rendition path names a file, not a directory")
        return canonical

    def _scope(
        self, principal: Principal, viewer: Viewer | None, media: MediaItem, item: SignItem, now: float, asserts: bool
    ) -> str | None:
        """The directory a prefix-scoped URL covers; None (the file alone) when ``or_file`` and it cannot be had."""
        if item.or_file and item.rendition not in media.prefixes:
            return None
        prefix = self._prefix(media, item)
        try:
            self._authorise_covered(principal, viewer, media, item, prefix, now, asserts)
        except Forbidden:
            if item.or_file:
                return None
            raise
        return prefix

    @staticmethod
    def _prefix(media: MediaItem, item: SignItem) -> str:
        prefix = media.prefixes.get(item.rendition)
        if prefix is None:
            # Its directory is shared with other items (or not declared): a prefix token would open theirs.
            raise Forbidden(
                f"media item {media.id!r} has no {item.rendition.value} directory of its own: use scope 'path'",
                reason="no-prefix",
            )
        return prefix

    def _authorise(
        self, principal: Principal, viewer: Viewer | None, media: MediaItem, item: SignItem, now: float, asserts: bool
    ) -> Decision:
        grants = self._grants(principal, media)
        decision = decide(principal, viewer, media, item.rendition, grants, now, viewer_address=asserts)
        if not decision.allowed:
            raise Forbidden(f"not permitted: {decision.reason}", reason=decision.reason)
        return decision

    def _authorise_covered(
        self,
        principal: Principal,
        viewer: Viewer | None,
        media: MediaItem,
        item: SignItem,
        prefix: str,
        now: float,
        asserts: bool,
    ) -> None:
        """A prefix token opens every rendition under it: each must be one this caller may have on its own.

        Renditions often share a directory (``/media/x/master.m3u8`` and ``/media/x/poster.jpg``): a
        thumbnail-only principal asking for the thumbnail's directory would otherwise get the video.
        """
        grants = self._grants(principal, media)
        for rendition in sorted(covered_renditions(media, prefix) - {item.rendition}, key=lambda r: r.value):
            if not decide(principal, viewer, media, rendition, grants, now, viewer_address=asserts).allowed:
                raise Forbidden(
                    f"the {item.rendition.value} directory {prefix!r} also holds the {rendition.value}, "
                    "which this caller may not have: use scope 'path'",
                    reason="prefix-covers-rendition",
                )

    def _grants(self, principal: Principal, media: MediaItem) -> list[Grant]:
        if principal.kind is PrincipalKind.ENGINEER:
            return self._state.view.grants_for(principal.id, media.id)
        return []


def _expiry(issued_at: int, ttl: int, grant: Grant | None, profile: Profile, now: float) -> int:
    """``issued_at + ttl``; under an access grant, no later than the grant's end.

    A URL issued under a grant must end with it, and stop when the grant is
    revoked: the verifier compares its signed issue time with the revocation
    (``grant-revoked``), so the format must sign one.
    """
    expires = issued_at + ttl
    if grant is None:
        return expires
    capabilities = profile.dialect.capabilities
    if not capabilities.starts:
        raise Forbidden(
            f"profile {profile.name} cannot sign an issue time, so a URL issued under access grant {grant.id} could "
            "not be stopped when the grant is revoked: use a profile that can (native, for one)",
            reason="grant-needs-issue-time",
        )
    step = capabilities.expiry_step
    ends = issued_at + int(grant.expires_at - issued_at) // step * step  # whole steps of the format, not past
    if ends <= max(issued_at, now):
        raise Forbidden(f"access grant {grant.id} ends before a URL could be valid", reason="grant-ending")
    return min(expires, ends)


def covered_renditions(media: MediaItem, prefix: str) -> set[Rendition]:
    """The renditions a token for ``prefix`` would open: their file, or their own directory, lies under it."""
    covered = {rendition for rendition, path in media.paths.items() if canonical_path(path).startswith(prefix)}
    covered |= {rendition for rendition, own in media.prefixes.items() if own.startswith(prefix)}
    return covered


def _raw_entries(logged: list[AuditRecord | IssuedUrl], ctx: RequestContext, now: float) -> list[RawEntry]:
    """One raw technical log entry per item, in order: its event and key."""
    raw: list[RawEntry] = []
    for entry in logged:
        event, kid = (_ISSUED, entry.kid) if isinstance(entry, IssuedUrl) else (entry.event.value, entry.kid)
        raw.append(RawEntry(now, event, ctx.request_id, kid, ctx.client_ip, ctx.user_agent))
    return raw


_ISSUED = AuditEvent.URL_ISSUED.value


def _counted(items: list[SignItem], logged: list[AuditRecord | IssuedUrl]) -> list[Counted]:
    """Each item's outcome for the metrics: issued with its decision's reason and profile, or denied with the
    refusal's reason and the profile it named."""
    return [
        ("issued", e.reason, e.detail["profile"]) if isinstance(e, IssuedUrl) else ("denied", e.reason or "", i.profile)
        for i, e in zip(items, logged, strict=True)
    ]


def _unmapped_binding(item: SignItem) -> SignItem:
    """The item with its client binding checked, an IPv4-mapped one bound as the IPv4 it is (what verify sees)."""
    if not item.client_ip:
        return item
    binding = unmapped(item.client_ip)
    return item if binding == item.client_ip else replace(item, client_ip=binding)
