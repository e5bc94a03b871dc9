"""Checking a presented signed URL: dialect, key state (revocation) and claims."""

from __future__ import annotations

from gateway.dialects import DialectRegistry
from gateway.dialects.base import Redemption, Verified
from gateway.errors import VerificationFailed
from gateway.keyring import Keyring


class Verifier:
    def __init__(self, keyring: Keyring, dialects: DialectRegistry, allowed: list[str]) -> None:
        self._keyring = keyring
        self._dialects = dialects
        self._allowed = list(allowed)

    async def verify(self, redemption: Redemption, dialect_name: str = "native") -> Verified:
        """Verified, or VerificationFailed carrying the precise reason."""
        if dialect_name not in self._allowed:
            raise VerificationFailed("dialect-not-allowed")
        dialect = self._dialects.get(dialect_name)
        key_id = dialect.presented_key_id(redemption)
        if key_id is None:
            raise VerificationFailed("unknown-key")
        key = await self._keyring.verification_key(key_id, redemption.now)
        return dialect.verify(redemption, key)
