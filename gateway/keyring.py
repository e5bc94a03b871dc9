"""Finding the key to sign or verify with, checking its state on every call.

Key rows are read from the store each time, so a revocation committed by any
process (another replica, ``gatewayctl``) applies to the very next request.
Only the unsealed secret is cached in memory, keyed by kid; a cached secret is
never used without the fresh row saying the key is active.
"""

from __future__ import annotations

from gateway.errors import Forbidden, VerificationFailed
from gateway.keymaterial import KeyMaterial
from gateway.model import KeyAlgorithm, KeyState, SigningKey
from gateway.sealing import MasterKey
from gateway.store.base import Store


def seal_context(kid: str) -> bytes:
    """AAD for a key's sealed secret: a sealed blob cannot be moved to another kid."""
    return f"gateway-signing-key:{kid}".encode()


def newest_active(keys: list[SigningKey], now: float) -> SigningKey | None:
    active = [k for k in keys if k.state(now) is KeyState.ACTIVE]
    return max(active, key=lambda k: (k.created_at, k.kid), default=None)


class Keyring:
    def __init__(self, store: Store, master_key: MasterKey) -> None:
        self._store = store
        self._master_key = master_key
        self._secrets: dict[str, bytes] = {}

    async def _secret(self, key: SigningKey) -> bytes:
        secret = self._secrets.get(key.kid)
        if secret is None:
            secret = await self._master_key.unseal(key.sealed_private, seal_context(key.kid))
            self._secrets[key.kid] = secret
        return secret

    async def signing_key(self, principal_id: str, now: float) -> KeyMaterial:
        """The principal's newest active key: rotation means newest signs, all verify."""
        key = newest_active(await self._store.keys.all(principal_id), now)
        if key is None:
            raise Forbidden(f"principal {principal_id} has no active signing key", code="no_active_key")
        return KeyMaterial(key.kid, key.algorithm, key.public_key, await self._secret(key))

    async def verification_key(self, kid: str, now: float) -> KeyMaterial:
        key = await self._store.keys.get(kid)
        if key is None:
            raise VerificationFailed("unknown-key")
        state = key.state(now)
        if state is not KeyState.ACTIVE:
            raise VerificationFailed(f"key-{state.value}")
        principal = await self._store.principals.get(key.principal_id)
        if principal is None or principal.disabled:
            raise VerificationFailed("principal-disabled")
        if key.algorithm is KeyAlgorithm.ED25519:
            return KeyMaterial(key.kid, key.algorithm, key.public_key, None)
        return KeyMaterial(key.kid, key.algorithm, None, await self._secret(key))
