"""Finding the key to sign or verify with, checking its state on every call.

Key rows come from the state view (``gateway.state``), which the change feed
keeps current, so a revocation committed by any process reaches every lookup
within the view's bound, with no database read per request. The view holds
no private halves: a key's sealed secret is read from the store and unsealed
on its first use in a process, then cached by kid; a cached secret is never
used without the view saying the key is active.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from gateway.errors import Forbidden, StoreUnavailable, VerificationFailed
from gateway.frozen import quick_init
from gateway.keys.material import KeyMaterial
from gateway.keys.sealing import MasterKey
from gateway.model import KeyAlgorithm, KeyState, SigningKey
from gateway.state.sync import StateSync
from gateway.store.base import Store

# Keys whose public half verifies: no need to unseal the private half.
_ASYMMETRIC = {KeyAlgorithm.ED25519, KeyAlgorithm.RSA_2048, KeyAlgorithm.ECDSA_P256}


def seal_context(kid: str) -> bytes:
    """AAD for a key's sealed secret: a sealed blob cannot be moved to another kid."""
    return f"gateway-signing-key:{kid}".encode()


def newest_active(keys: list[SigningKey], now: float) -> SigningKey | None:
    active = [k for k in keys if k.state(now) is KeyState.ACTIVE]
    return max(active, key=lambda k: (k.created_at, k.kid), default=None)


@quick_init
@dataclass(frozen=True)
class SigningChoice:
    row: SigningKey
    material: KeyMaterial


class Keyring:
    def __init__(self, state: StateSync, store: Store, master_key: MasterKey) -> None:
        self._state = state
        self._store = store
        self._master_key = master_key
        self._secrets: dict[str, bytes] = {}

    async def secret(self, key: SigningKey) -> bytes:
        """The key's private half, unsealed once per process (the view holds keys without it)."""
        secret = self._secrets.get(key.kid)
        if secret is None:
            sealed = key.sealed_private or await self._sealed(key.kid)
            secret = await self._master_key.unseal(sealed, seal_context(key.kid))
            self._secrets[key.kid] = secret
        return secret

    async def _sealed(self, kid: str) -> bytes:
        row = await self._store.keys.get(kid)
        if row is None:
            raise StoreUnavailable(f"key {kid} is in the state view but not in the store")
        return row.sealed_private

    async def signing_key(
        self,
        principal_id: str,
        now: float,
        algorithms: Collection[KeyAlgorithm] | None = None,
        by_external_id: bool = False,
    ) -> SigningChoice:
        """The principal's newest usable key: rotation means newest signs, all verify.

        ``algorithms`` limits the key types (a CloudFront profile needs RSA or
        ECDSA); ``by_external_id`` requires the key to be linked to the CDN's id
        for it, which then goes into the URL.
        """
        keys = [
            k for k in self._state.view.keys_of(principal_id)
            if (algorithms is None or k.algorithm in algorithms) and (not by_external_id or k.external_id)
        ]  # fmt: skip
        key = newest_active(keys, now)
        if key is None:
            raise Forbidden(f"principal {principal_id} has no active signing key for this CDN", code="no_active_key")
        url_id = key.external_id if by_external_id and key.external_id else key.kid
        secret = await self.secret(key)
        current = self._state.view.keys.get(key.kid)
        if current is None or current.state(now) is not KeyState.ACTIVE:
            # Revoked (or gone) while its secret was read from the store: choose again, from the view as it is now.
            return await self.signing_key(principal_id, now, algorithms, by_external_id)
        return SigningChoice(key, KeyMaterial(url_id, key.algorithm, key.public_key, secret))

    def active_key(self, key_id: str, now: float, by_external_id: bool = False) -> SigningKey:
        """The key a URL names, if it and its principal may still be trusted."""
        view = self._state.view
        key = view.key_by_external_id(key_id) if by_external_id else view.keys.get(key_id)
        if key is None:
            raise VerificationFailed("unknown-key", kid=key_id)
        state = key.state(now)
        if state is not KeyState.ACTIVE:
            raise VerificationFailed(f"key-{state.value}", kid=key.kid)
        principal = view.principals.get(key.principal_id)
        if principal is None or principal.disabled:
            raise VerificationFailed("principal-disabled", kid=key.kid, principal=key.principal_id)
        return key

    async def verification_material(self, key: SigningKey, url_id: str) -> KeyMaterial:
        if key.algorithm in _ASYMMETRIC:
            return KeyMaterial(url_id, key.algorithm, key.public_key, None)
        return KeyMaterial(url_id, key.algorithm, None, await self.secret(key))
