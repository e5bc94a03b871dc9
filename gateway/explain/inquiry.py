"""``gatewayctl explain`` and ``POST /v1/explain``: why /v1/verify would refuse this URL now, or that it would not.

The verdict is the verifier's own (``Verifier.verify`` with ``remember=False``:
decided afresh, never from or into the decision cache, and no redemption is
recorded), under the profile /v1/verify would use for it. Around it, from the
live state and the audit log: who revoked the key, when and why; who
disabled the principal; which item's links or which grant were revoked, when
and by whom; the token's own claims; a signer's clock running ahead; and,
when the URL is refused, whether another configured profile accepts it (the
wrong profile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.errors import InvalidInput, VerificationFailed
from gateway.explain.reasons import ACCEPTED, fact_lines, meaning, skew_line, utc
from gateway.services import Services
from gateway.signing.dialects.base import Redemption
from gateway.signing.dialects.native import presented_claims
from gateway.signing.paths import path_problem, url_path
from gateway.signing.profiles import NATIVE, Profile
from gateway.signing.verification import Accepted
from gateway.store.base import AuditQuery
from gateway.web.verify import path_and_query

_DID = {"media:put": "narrowed who may see it", "media:deleted": "deleted it"}
# Refusals that a URL of another format earns under the wrong profile.
_FOREIGN = {"malformed", "unknown-key", "bad-signature", "bad-signature-or-wrong-ip", "unattributable", "wrong-scope"}


@dataclass(frozen=True)
class Explanation:
    verdict: Literal["accepted", "refused"]
    reason: str  # "ok", or the verifier's reason
    profile: str
    summary: str
    details: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Case:
    profile: Profile
    url: str
    now: float
    facts: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)


class Inquiry:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def explain(self, uri: str, *, profile: str | None, client_ip: str | None, now: float) -> Explanation:
        chosen = self._profile(uri, profile)
        case = _Case(chosen, uri, now)
        try:
            accepted = await self._verify(case, chosen, client_ip)
        except VerificationFailed as refused:
            return await self._refused(case, refused, client_ip)
        if chosen.name not in self._services.profiles.verifiable:
            case.details.append(f"/v1/verify is not allowed to use profile {chosen.name}; under it the URL verifies")
            return self._answer(case, "profile-not-allowed")
        case.facts.update(kid=accepted.kid, principal=accepted.principal_id, expires=accepted.expires,
                          issued_at=accepted.issued_at)  # fmt: skip
        case.details += _accepted_lines(accepted, now)
        return self._answer(case, ACCEPTED)

    def _profile(self, uri: str, name: str | None) -> Profile:
        """The named profile; else the one whose base URL the URL is on; else the one /v1/verify uses by default."""
        profiles = self._services.profiles
        if name is not None:
            return profiles.get(name)
        on_base = [p for p in map(profiles.get, profiles.names()) if uri.startswith(p.base_url + "/")]
        verifiable = [p for p in on_base if p.name in profiles.verifiable] or on_base
        return verifiable[0] if verifiable else profiles.for_verification(None, from_trusted_proxy=False)

    async def _verify(self, case: _Case, profile: Profile, client_ip: str | None) -> Accepted:
        try:
            url = profile.base_url + path_and_query(case.url)
        except InvalidInput as exc:
            raise VerificationFailed("malformed") from exc
        if profile.dialect.name == NATIVE and not case.facts.get("token"):
            claims = presented_claims(url)
            if claims:
                case.facts["token"] = claims
        redemption = Redemption(url, case.now, client_ip, {}, profile.options)
        try:
            return await self._services.verifier.verify(redemption, profile, remember=False)
        except InvalidInput as exc:
            raise VerificationFailed("malformed") from exc

    async def _refused(self, case: _Case, refused: VerificationFailed, client_ip: str | None) -> Explanation:
        reason, facts = refused.reason, dict(refused.facts)
        case.facts.update(facts)
        if reason == "non-canonical-path":
            case.details.append(f"the path breaks this rule: {path_problem(url_path(case.url)) or 'it is not a path'}")
        case.details += fact_lines(reason, facts, case.now)
        case.details += await self._history(reason, facts)
        if reason in _FOREIGN:
            case.details += await self._other_profiles(case, client_ip)
        return self._answer(case, reason)

    def _answer(self, case: _Case, reason: str) -> Explanation:
        issued = case.facts.get("issued_at") or _int(case.facts.get("token", {}).get("gw_iat"))
        skew = skew_line(issued, case.now)
        details = case.details + ([skew] if skew else [])
        verdict: Literal["accepted", "refused"] = "accepted" if reason == ACCEPTED else "refused"
        return Explanation(verdict, reason, case.profile.name, meaning(reason), details, _plain(case.facts))

    async def _other_profiles(self, case: _Case, client_ip: str | None) -> list[str]:
        profiles = self._services.profiles
        for name in profiles.names():
            if name == case.profile.name:
                continue
            other = profiles.get(name)
            try:
                await self._verify(_Case(other, case.url, case.now), other, client_ip)
            except VerificationFailed:
                continue
            case.facts["accepted_by_profile"] = name
            where = "a proxy naming it in X-Gateway-Profile" if name in profiles.verifiable else "verify.profiles"
            return [f"it is a URL of profile {name} ({other.dialect.name}), which accepts it: use {where}"]
        return []

    async def _history(self, reason: str, facts: dict[str, Any]) -> list[str]:
        """Who did it, when, and why: from the state view and the audit log."""
        if reason in ("key-revoked", "key-expired"):
            return await self._key_history(str(facts["kid"]))
        if reason == "principal-disabled":
            return await self._principal_history(str(facts["principal"]))
        if reason in ("links-revoked", "grant-revoked"):
            return await self._revocation_history(reason, facts)
        if reason == "unknown-key" and "kid" in facts:
            return [f"no key {facts['kid']} exists here (never created on this deployment, or another profile's id)"]
        if reason == "state-stale":
            age = self._services.state.age()
            return [
                f"the view was last proved current {age:.1f} s ago (limit {self._services.config.state_stale_after} s)"
            ]
        return []

    async def _key_history(self, kid: str) -> list[str]:
        key = self._services.state.view.keys.get(kid)
        if key is None:
            return []
        if key.revoked_at is None:
            return [f"key {kid} of principal {key.principal_id} expired at {utc(key.not_after or 0)} (its not-after)"]
        found = await self._services.store.audit.search(AuditQuery(event="key:revoked", kid=kid, limit=1))
        actor, why, at = (found[0].actor, found[0].reason, found[0].time) if found else (
            key.revoked_by, key.revoked_reason, key.revoked_at
        )  # fmt: skip
        return [f"key {kid} of principal {key.principal_id} was revoked at {utc(at)} by {actor}: {why or 'no reason'}"]

    async def _principal_history(self, principal_id: str) -> list[str]:
        principal = self._services.state.view.principals.get(principal_id)
        if principal is None or principal.disabled_at is None:
            return [f"principal {principal_id} does not exist here"]
        query = AuditQuery(event="principal:disabled", subject=principal_id, limit=1)
        found = await self._services.store.audit.search(query)
        actor = found[0].actor if found else "someone (no audit record found)"
        return [f"principal {principal_id} was disabled at {utc(principal.disabled_at)} by {actor}"]

    async def _revocation_history(self, reason: str, facts: dict[str, Any]) -> list[str]:
        at, path = float(facts["revoked_at"]), str(facts["path"])
        grantee = facts.get("principal") if reason == "grant-revoked" else None
        media_id = self._revoked_item(path, at, grantee)
        if media_id is None:
            return []
        facts["media_id"] = media_id
        found = await self._services.store.audit.search(AuditQuery(media_id=media_id, since=at, until=at + 0.001))
        events = {"grant:revoked"} if grantee else {"media:links_revoked", "media:put", "media:deleted"}
        record = next((r for r in found if r.event.value in events), None)
        if record is None:
            return [f"media item {media_id}"]
        what = {"media:put": "narrowed who may see it", "media:deleted": "deleted it"}.get(record.event.value)
        did = what or (
            "revoked the grant " + str(record.detail.get("grant_id", "")) if grantee else "revoked its links"
        )
        return [f"media item {media_id}: {record.actor} {did} at {utc(record.time)}: {record.reason or 'no reason'}"]

    def _revoked_item(self, path: str, at: float, grantee: str | None) -> str | None:
        """The media item whose revocation at ``at`` covers ``path`` (its rows are in the state view)."""
        for media_id, rows in self._services.state.view.revocations().items():
            for row in rows:
                covers = path.startswith(row.path) if row.is_prefix else path == row.path
                if covers and row.at == at and row.principal_id == grantee:
                    return media_id
        return None


def _accepted_lines(accepted: Accepted, now: float) -> list[str]:
    lines = [
        f"signed by key {accepted.kid} of principal {accepted.principal_id}; it expires at {utc(accepted.expires)}, "
        f"{accepted.expires - now:.0f} s from now"
    ]
    if accepted.prefix is not None:
        lines.append(f"it is a prefix token: it covers every path under {accepted.prefix}")
    if accepted.issued_at is not None:
        lines.append(f"issued at {utc(accepted.issued_at)}")
    return lines


def _int(text: object) -> int | None:
    return int(text) if isinstance(text, str) and text.isdigit() else None


def _plain(facts: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly facts: numbers, strings and the token's claims."""
    return {k: v if isinstance(v, int | float | str | dict) or v is None else str(v) for k, v in facts.items()}
