"""Every reason the verifier can refuse a URL with, in words, and the facts of one refusal as lines.

``MEANING`` is the closed table: a reason raised anywhere in ``gateway/``
(``VerificationFailed("...")``) without an entry here fails
``tests/test_explain.py``. ``fact_lines`` turns what the refusal was decided
on (``VerificationFailed.facts``, the token's own claims) into sentences with
numbers: how long ago it expired, which prefix it covers, what was signed.
Pure: the time is an argument, nothing is looked up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

ACCEPTED = "ok"

MEANING: Mapping[str, str] = {
    ACCEPTED: "accepted: /v1/verify would allow this URL now",
    "state-stale": "this gateway's view of keys and revocations is too old to decide on, so it refuses everything "
    "until its change feed catches up (state.stale_after)",
    "malformed": "malformed: signature parameters are missing, repeated, unknown, or in a spelling the signer "
    "never writes",
    "non-canonical-path": "non-canonical path: the gateway verifies only the one canonical spelling of a path, "
    "which nginx, a CDN and the origin all read alike (docs/paths.md)",
    "unattributable": "no principal: this format, as configured, does not sign the principal's key id, so a "
    "revoked key could not be refused: /v1/verify refuses its URLs",
    "no-secret": "the profile has no shared secret to check this format with",
    "unknown-key": "unknown key: the URL names a key this gateway does not know",
    "key-revoked": "the key that signed it has been revoked",
    "key-expired": "the key that signed it is past its not-after time",
    "principal-disabled": "the principal that owns the signing key is disabled",
    "bad-signature": "bad signature: the URL was changed after signing, or signed with another key",
    "bad-signature-or-wrong-ip": "bad signature or wrong client address: the format hashes the client address "
    "into the signature, so a forged URL and a right URL from another address look the same",
    "expired": "expired",
    "not-yet-valid": "not valid yet: its start time is in the future",
    "outside-prefix": "outside the signed prefix: the token covers a directory this path is not under",
    "wrong-ip": "wrong client address: the URL is bound to another address or network",
    "wrong-scope": "wrong credential scope: signed for another date, region or service (S3 SigV4)",
    "expiry-too-far": "the expiry is further ahead than the gateway ever signs (max_ttl + cache_window): a URL "
    "whose fields were re-read to move its expiry",
    "links-revoked": "the media item's links were revoked after this URL was issued",
    "grant-revoked": "the access grant it was issued under has been revoked",
    "profile-not-allowed": "wrong profile: /v1/verify does not use this profile (verify.profiles), or the proxy "
    "that named it is not trusted",
    "ambiguous-uri": "the request named the URL twice (X-Original-URI and a path after /v1/verify)",
    "untrusted-original-uri": "X-Original-URI came from a peer that is not a trusted proxy (proxy.trusted)",
    "duplicate-header": "a header that names one thing (X-Original-URI, X-Original-Method, X-Gateway-Profile) "
    "was sent twice",
    "method-not-allowed": "not a read: a signed URL allows only GET and HEAD, and the viewer's method (the request's "
    "own, or X-Original-Method from nginx) was another, such as DELETE, PUT or POST",
}


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _expired(facts: Mapping[str, Any], now: float) -> list[str]:
    return [f"it expired {now - facts['expires']:.0f} s ago, at {utc(facts['expires'])}"]


def _not_yet_valid(facts: Mapping[str, Any], now: float) -> list[str]:
    ahead = facts["starts"] - now
    return [
        f"it is valid from {utc(facts['starts'])}, {ahead:.0f} s from now; where the gateway signs its issue "
        f"time as the start (every format but native), the clock of the gateway that signed it is {ahead:.0f} s "
        "ahead of this one"
    ]


def _outside_prefix(facts: Mapping[str, Any], now: float) -> list[str]:
    return [f"the token covers {facts['prefix']}, and {facts['path']} is not under it"]


def _wrong_ip(facts: Mapping[str, Any], now: float) -> list[str]:
    client = facts.get("client") or "an unknown address"
    return [f"it is bound to {facts['bound']}; the request came from {client}"]


def _bad_signature(facts: Mapping[str, Any], now: float) -> list[str]:
    if "signed" not in facts:
        return ["this format hashes a shared secret with what it signs, so there is no string to show"]
    return ["the signature does not match this string to sign (as the verifier rebuilt it from the URL):", ""]


def _expiry_too_far(facts: Mapping[str, Any], now: float) -> list[str]:
    ahead = facts["expires"] - now
    return [f"it expires at {utc(facts['expires'])}, {ahead:.0f} s from now; the limit is {facts['limit']} s"]


def _revoked_links(facts: Mapping[str, Any], now: float) -> list[str]:
    return [
        f"links covering {facts['path']} were revoked at {utc(facts['revoked_at'])}; this URL was issued at "
        f"{utc(facts['issued_at'])}, before that (or in the same second)"
    ]


def _revoked_grant(facts: Mapping[str, Any], now: float) -> list[str]:
    return [
        f"the grant that let {facts['principal']} sign for {facts['path']} was revoked at "
        f"{utc(facts['revoked_at'])}; this URL was issued at {utc(facts['issued_at'])}"
    ]


_FACTS: Mapping[str, Callable[[Mapping[str, Any], float], list[str]]] = {
    "expired": _expired,
    "not-yet-valid": _not_yet_valid,
    "outside-prefix": _outside_prefix,
    "wrong-ip": _wrong_ip,
    "bad-signature": _bad_signature,
    "expiry-too-far": _expiry_too_far,
    "links-revoked": _revoked_links,
    "grant-revoked": _revoked_grant,
}


def meaning(reason: str) -> str:
    return MEANING.get(reason, reason)


def fact_lines(reason: str, facts: Mapping[str, Any], now: float) -> list[str]:
    """Sentences about this refusal from its facts; the string to sign follows a bad-signature line as is."""
    describe = _FACTS.get(reason)
    try:
        lines = describe(facts, now) if describe else []
    except KeyError:  # a dialect that raised the reason without its facts: the meaning alone
        return []
    if reason == "bad-signature" and "signed" in facts:
        lines[-1:] = str(facts["signed"]).split("\n")
    return lines


def skew_line(issued_at: int | None, now: float) -> str | None:
    """A signed issue time in the future: the signer's clock is ahead of this one."""
    if issued_at is None or issued_at <= now:
        return None
    return (
        f"its issue time {utc(issued_at)} is {issued_at - now:.0f} s in the future: the clock of the gateway "
        "that signed it is ahead of this one by at least that much"
    )
