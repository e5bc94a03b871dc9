"""The interface every signed-URL format ("dialect") implements.

A dialect is pure: it turns a ``SignRequest`` plus key material into a URL
(or cookies), and checks a presented URL against key material at an explicit
``now``. Looking keys up, checking revocation and logging happen around it.

Attribution: a dialect whose format names the key (``Key-Pair-Id``,
``KeyName``, ``gw_kid``) is signed with the principal's own key and reports
that id from ``presented_key_id``: naming another key means verifying with
another key, so the id is bound to the signature. A shared-secret dialect
puts the principal's gateway key id into a field its signature covers
(``attribution_field``) and returns it in ``Verified.attribution`` only when
``attribution_covered(options)`` says the signature covers it; otherwise the
gateway could be told any key id by whoever holds the URL.

Paths: the verifier refuses non-canonical request paths (``gateway.signing.paths``)
before any dialect sees the URL, so dialects compare canonical paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.frozen import quick_init
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm


@quick_init
@dataclass(frozen=True)
class SignRequest:
    url: str
    expires: int
    starts: int | None = None
    ip: str | None = None
    # A path prefix ("/v/abc/") the token also covers: HLS/DASH segments.
    prefix: str | None = None
    # The principal's gateway key id, for dialects that only have a shared secret.
    attribution: str | None = None
    # When the token is issued (WMSAuth signs it); defaults to ``starts`` or a TTL guess.
    issued_at: int | None = None
    # Carry the prefix token as a path segment (``/_t/<token>/…``) rather than in the query: dialects whose
    # capabilities say ``path_token`` (native).
    path_token: bool = False
    options: Mapping[str, str] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True)
class Signed:
    url: str
    cookies: Mapping[str, str] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True)
class Redemption:
    """A URL presented for verification, with what the verifier knows about the request."""

    url: str
    now: float
    client_ip: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    # The same dialect options the URL was signed with (a profile's, or the CLI's --option).
    options: Mapping[str, str] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True)
class Verified:
    key_id: str | None
    expires: int
    attribution: str | None = None
    # When the URL was issued, if its signature covers that (native gw_iat, or a signed start time):
    # what a link revocation is compared with. None: only the expiry bounds the URL.
    issued_at: int | None = None
    # The directory a prefix token was verified for: it holds for every path under it (see reuse_key).
    prefix: str | None = None
    # What the signature covers, one value however the URL is spelled (parameters reordered, empty '&' parts):
    # the redemption log's "one token" (gateway.audit.redemptions). None: the URL as presented names it.
    identity: bytes | None = field(default=None, compare=False)  # derived from what the fields above come from


@dataclass(frozen=True)
class Capabilities:
    """What a dialect can restrict and how it identifies keys (README's dialect table)."""

    key_types: tuple[KeyAlgorithm, ...]
    starts: bool = False
    ip: str = "no"  # "no", "exact", "ipv4-cidr", "cidr"
    prefix: str = "no"
    cookie: bool = False
    key_id_field: str | None = None
    attribution_field: str | None = None
    # The option that decides whether attribution is signed (nginx: "expression"), for error messages.
    attribution_option: str | None = None
    revocation: str = ""
    # The format's expiry counts in steps of this many seconds from the issue time (WMSAuth: minutes).
    expiry_step: int = 1
    # A prefix token can travel as a path segment, /_t/<token>/<path> (gateway.signing.path_tokens).
    path_token: bool = False


class Dialect(Protocol):
    name: str
    capabilities: Capabilities

    def describe(self) -> str: ...

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """Key material from the CDN's own key-file form (see ``gatewayctl sign --help``)."""
        ...

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed: ...

    def presented_key_id(self, redemption: Redemption) -> str | None:
        """The key id the URL names, or None for shared-secret formats."""
        ...

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        """True when, with these options, the signature binds the key id the verifier reads."""
        ...

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        """Return what was verified, or raise VerificationFailed with the precise reason."""
        ...

    def reuse_key(self, redemption: Redemption) -> str | None:
        """For a prefix token (its signature covers a directory, not the request path): the signed token
        alone, so one verification can stand for every segment under the prefix (``Verified.prefix``).
        None: a verification stands only for the exact URL (and cookies) presented."""
        ...
