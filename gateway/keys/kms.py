"""The master key held by AWS KMS: envelope encryption under one data key.

``GenerateDataKey`` (AES_256) gives a data key twice: in plaintext, kept only
in this process's memory and used exactly like the local master key
(AES-256-GCM, the caller's context as AAD), and wrapped by the KMS key. The
wrapped copy (``WrappedDataKey``) is kept in the gateway's database beside
the secrets it protects: without ``kms:Decrypt`` on the KMS key it is
useless. Every start unwraps it with one ``Decrypt``; KMS is not called per
secret. Keeping it in the database, not in a file, means every replica finds
the same data key without copying files between hosts, and a process that
meets a secret sealed under a data key it does not hold yet can look it up.

Both calls bind an encryption context, so the wrapped key cannot be
decrypted as anything else. KMS failures become ``ConfigError`` (a refusal:
wrong key id, access denied, disabled key, no credentials; exit 78) or
``StoreUnavailable`` (unreachable, throttled; exit 69), never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import ConfigError, StoreUnavailable
from gateway.keys.sealing import AesGcmMasterKey, fingerprint_id

KMS_PREFIX = "kms"
_ENCRYPTION_CONTEXT = {"purpose": "media-gateway master data key"}
# KMS answers that mean "try again later" rather than "you may not".
_TRANSIENT = frozenset(
    {"ThrottlingException", "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
     "ServiceUnavailableException", "RequestLimitExceeded", "InternalFailure"}
)  # fmt: skip


class KmsClient(Protocol):
    """The two KMS calls the gateway makes (a boto3 KMS client)."""

    def generate_data_key(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def decrypt(self, **kwargs: Any) -> Mapping[str, Any]: ...


KmsClients = Callable[[str], KmsClient]  # region -> client


@dataclass(frozen=True)
class WrappedDataKey:
    """A data key as KMS wrapped it, and what it is: stored in the database, never the plaintext."""

    key_id: str  # the master key id sealed envelopes name: "kms:" + a hash of the plaintext
    kms_key: str  # the KMS key's ARN, as GenerateDataKey reported it
    requested_as: str  # master_key.kms_key_id when it was made: an alias, key id or ARN
    ciphertext: bytes
    created_at: float

    def to_bytes(self) -> bytes:
        data = {
            "key_id": self.key_id,
            "kms_key": self.kms_key,
            "requested_as": self.requested_as,
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
            "created_at": self.created_at,
        }
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> WrappedDataKey:
        try:
            raw = json.loads(data)
            return cls(
                key_id=str(raw["key_id"]),
                kms_key=str(raw["kms_key"]),
                requested_as=str(raw["requested_as"]),
                ciphertext=base64.b64decode(raw["ciphertext"], validate=True),
                created_at=float(raw["created_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreUnavailable(f"a stored KMS data key is malformed: {exc}") from None

    def made_with(self, kms_key_id: str) -> bool:
        """True when this data key was made with the KMS key ``kms_key_id`` names (alias, ARN or key id)."""
        return kms_key_id in (self.requested_as, self.kms_key) or self.kms_key.endswith(f":key/{kms_key_id}")

    @property
    def region(self) -> str | None:
        """The KMS key's region, from its ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."""
        parts = self.kms_key.split(":")
        return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def data_key_master(plaintext: bytes) -> AesGcmMasterKey:
    return AesGcmMasterKey(plaintext, fingerprint_id(KMS_PREFIX, plaintext))


async def generate(client: KmsClient, kms_key_id: str, now: float) -> tuple[WrappedDataKey, AesGcmMasterKey]:
    """A new data key under ``kms_key_id``: its wrapped form to store, its plaintext as a master key."""
    reply = await _call(
        client.generate_data_key, "GenerateDataKey", kms_key_id,
        KeyId=kms_key_id, KeySpec="AES_256", EncryptionContext=_ENCRYPTION_CONTEXT,
    )  # fmt: skip
    master = data_key_master(bytes(reply["Plaintext"]))
    wrapped = WrappedDataKey(master.key_id, str(reply["KeyId"]), kms_key_id, bytes(reply["CiphertextBlob"]), now)
    return wrapped, master


async def unwrap(client: KmsClient, wrapped: WrappedDataKey) -> AesGcmMasterKey:
    """The data key, unwrapped by KMS; it must be the key the record says (its id is a hash of it)."""
    reply = await _call(
        client.decrypt, "Decrypt", wrapped.kms_key,
        CiphertextBlob=wrapped.ciphertext, KeyId=wrapped.kms_key, EncryptionContext=_ENCRYPTION_CONTEXT,
    )  # fmt: skip
    master = data_key_master(bytes(reply["Plaintext"]))
    if master.key_id != wrapped.key_id:
        raise StoreUnavailable(f"the KMS data key {wrapped.key_id} unwrapped to a different key")
    return master


def boto3_clients(endpoint_url: str = "") -> KmsClients:
    """boto3 KMS clients per region, with short timeouts: an unreachable KMS fails start-up in seconds.

    boto3 is imported on the first client, so a gateway that never meets KMS never pays for it.
    """
    made: dict[str, KmsClient] = {}

    def client(region: str) -> KmsClient:
        if region not in made:
            import boto3
            from botocore.config import Config as BotoConfig

            settings = BotoConfig(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
            made[region] = boto3.client("kms", region_name=region, endpoint_url=endpoint_url or None, config=settings)
        return made[region]

    return client


async def _call(method: Callable[..., Mapping[str, Any]], operation: str, kms_key: str, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    try:
        # boto3 blocks: off the event loop (start-up, and the rare first use of another data key).
        return await asyncio.to_thread(method, **kwargs)
    except (NoCredentialsError, PartialCredentialsError):
        raise ConfigError(
            "AWS KMS: no AWS credentials found (environment, shared config file or instance role)"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "error"), error.get("Message", "")
        text = f"AWS KMS refused {operation} with key {kms_key!r}: {code} {message}".strip()
        raise (StoreUnavailable(text) if code in _TRANSIENT else ConfigError(text)) from None
    except BotoCoreError as exc:  # connection refused, timeouts, DNS: KMS is unreachable
        raise StoreUnavailable(f"AWS KMS is unreachable ({operation}): {exc}") from None
