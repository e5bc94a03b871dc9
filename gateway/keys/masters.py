"""The master keys a process holds: the configured one seals, any master that sealed a secret opens it.

``master_key.backend`` chooses the master that seals new secrets: ``local``
(``keys/master.key``) or ``kms`` (a data key under ``master_key.kms_key_id``,
made on first use and kept wrapped in the database; ``gateway.keys.kms``).
Every sealed secret names the master that sealed it (``gateway.keys.sealing``),
so ``MasterKeys`` opens each with its own master, finding the others on first
need: the local key file, or a wrapped data key in the database unwrapped by
KMS. That is what lets ``gatewayctl master-key rewrap`` move secrets from one
master to another while the gateway runs: a process that meets a secret
sealed under the new master finds and opens it; the old one still opens the
rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.config import Config
from gateway.errors import ConfigError, StoreUnavailable
from gateway.keys.kms import KMS_PREFIX, KmsClient, KmsClients, WrappedDataKey, boto3_clients, generate, unwrap
from gateway.keys.sealing import LEGACY, LocalMasterKey, MasterKey, sealed_by
from gateway.store.base import Store

BACKENDS = ("local", "kms")


class MasterKeySources:
    """Where master keys come from: the local key file, and KMS-wrapped data keys in the store."""

    def __init__(self, config: Config, store: Store, clients: KmsClients, clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._clients = clients
        self._clock = clock

    def local(self) -> LocalMasterKey:
        return LocalMasterKey.load(self._config.master_key_path)

    async def kms(self, *, create: bool) -> MasterKey:
        """The data key for ``master_key.kms_key_id``: the oldest stored one, or (``create``) a new one.

        Two processes starting at once may both make one; each stores its own, and
        reading back the oldest makes them agree. Both stay openable either way.
        """
        kms_key_id = self._config.kms_key_id
        if not kms_key_id:
            raise ConfigError("master_key.kms_key_id is not set: name the KMS key (ARN, key id or alias/NAME)")
        made = sorted((w for w in await self._wrapped() if w.made_with(kms_key_id)), key=_age)
        if made:
            return await unwrap(self._client(made[0]), made[0])
        if not create:
            raise ConfigError(f"no data key under {kms_key_id} yet: 'gatewayctl master-key rewrap --to kms' makes one")
        wrapped, _ = await generate(self._clients(self._config.kms_region), kms_key_id, self._clock())
        async with self._store.transaction() as tx:
            await tx.keys.add_data_key(wrapped.key_id, wrapped.to_bytes())
        return await self.kms(create=False)

    async def find(self, key_id: str) -> MasterKey | None:
        """The master named ``key_id`` in a sealed envelope, if this process can get it."""
        if key_id == LEGACY or key_id.startswith("local:"):
            local = self.local()
            return local if key_id in (LEGACY, local.key_id) else None
        if key_id.startswith(KMS_PREFIX + ":"):
            found = [w for w in await self._wrapped() if w.key_id == key_id]
            return await unwrap(self._client(found[0]), found[0]) if found else None
        return None

    async def _wrapped(self) -> list[WrappedDataKey]:
        return [WrappedDataKey.from_bytes(blob) for blob in (await self._store.keys.data_keys()).values()]

    def _client(self, wrapped: WrappedDataKey) -> KmsClient:
        return self._clients(wrapped.region or self._config.kms_region)


def _age(wrapped: WrappedDataKey) -> tuple[float, str]:
    return wrapped.created_at, wrapped.key_id


class MasterKeys:
    """The process's master key: seals with the configured master, opens with the one that sealed."""

    def __init__(self, sealing: MasterKey, sources: MasterKeySources) -> None:
        self._sealing = sealing
        self._sources = sources
        self._held: dict[str, MasterKey] = {sealing.key_id: sealing}
        if isinstance(sealing, LocalMasterKey):
            self._held[LEGACY] = sealing  # v1 envelopes: only the local key wrote them
        self._finding = asyncio.Lock()

    @property
    def key_id(self) -> str:
        return self._sealing.key_id

    @property
    def sources(self) -> MasterKeySources:
        return self._sources

    async def seal(self, plaintext: bytes, context: bytes) -> bytes:
        return await self._sealing.seal(plaintext, context)

    def adopt(self, master: MasterKey) -> None:
        """Hold ``master`` too (a rewrap's target): what it seals opens here without a lookup."""
        self._held.setdefault(master.key_id, master)

    async def unseal(self, sealed: bytes, context: bytes) -> bytes:
        master = await self.opener(sealed_by(sealed))
        return await master.unseal(sealed, context)

    async def opener(self, key_id: str) -> MasterKey:
        """The master that opens what ``key_id`` sealed, found once and then held."""
        master = self._held.get(key_id)
        if master is not None:
            return master
        async with self._finding:  # one lookup (one KMS call) however many requests need it at once
            master = self._held.get(key_id) or await self._find(key_id)
        self._held[key_id] = master
        return master

    async def _find(self, key_id: str) -> MasterKey:
        try:
            master = await self._sources.find(key_id)
        except ConfigError as exc:
            raise StoreUnavailable(f"cannot open secrets sealed by master key {key_id}: {exc.message}") from None
        if master is None:
            raise StoreUnavailable(f"secrets sealed by master key {key_id} cannot be opened: no such master key here")
        return master


async def open_master_keys(config: Config, store: Store, clients: KmsClients | None = None) -> MasterKeys:
    """The configured sealing master (its KMS data key made on first use), able to find the others."""
    sources = MasterKeySources(config, store, clients or boto3_clients(config.kms_endpoint_url), time.time)
    if config.master_key_backend == "kms":
        sealing = await sources.kms(create=True)
    else:
        sealing = sources.local()
    return MasterKeys(sealing, sources)
