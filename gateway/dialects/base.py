"""The interface every signed-URL format ("dialect") implements.

A dialect is pure: it turns a ``SignRequest`` plus key material into a URL,
and checks a URL against key material at an explicit ``now``. Looking keys up,
checking revocation and logging happen in the services around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.keymaterial import KeyMaterial


@dataclass(frozen=True)
class SignRequest:
    url: str
    expires: int
    starts: int | None = None
    ip: str | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class Redemption:
    """A URL presented for verification, with what the verifier knows about the request."""

    url: str
    now: float
    client_ip: str | None = None


@dataclass(frozen=True)
class Verified:
    kid: str
    expires: int
    path: str


class Dialect(Protocol):
    name: str

    def sign(self, request: SignRequest, key: KeyMaterial) -> str: ...

    def key_id(self, url: str) -> str:
        """The key id the URL claims; raises VerificationFailed('malformed') if none."""
        ...

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        """Return what was verified, or raise VerificationFailed with the precise reason."""
        ...

    def describe(self) -> str: ...
