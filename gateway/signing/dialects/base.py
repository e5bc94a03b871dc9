"""The interface every signed-URL format ("dialect") implements.

A dialect is pure: it turns a ``SignRequest`` plus key material into a URL
(or cookies), and checks a presented URL against key material at an explicit
``now``. Looking keys up, checking revocation and logging happen around it.

Attribution: a dialect whose format names the key (``Key-Pair-Id``,
``KeyName``, ``gw_kid``) is signed with the principal's own key and reports
that id from ``presented_key_id``. A shared-secret dialect puts the
principal's gateway key id into a signed field of the format
(``attribution_field``) and returns it in ``Verified.attribution``, so the
gateway can still refuse a revoked principal's URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm


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
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Signed:
    url: str
    cookies: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Redemption:
    """A URL presented for verification, with what the verifier knows about the request."""

    url: str
    now: float
    client_ip: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    # The same dialect options the URL was signed with (a profile's, or the CLI's --option).
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verified:
    key_id: str | None
    expires: int
    attribution: str | None = None


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
    revocation: str = ""


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

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        """Return what was verified, or raise VerificationFailed with the precise reason."""
        ...
