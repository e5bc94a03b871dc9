"""CloudFront public keys, and the key group the gateway publishes principals' keys in.

CloudFront checks signed URLs itself, against the public keys in the key
groups a cache behavior trusts. ``publish`` uploads a key's public half
(``CreatePublicKey``; its ``CallerReference`` is the gateway's kid, so a
retried publish finds the key it made before instead of making a second) and
adds it to the configured key group; ``unpublish`` takes it out of the group
and deletes it. A key group or public key is changed only with the ETag it
was read with (``IfMatch``): if another writer changed it in between,
CloudFront answers ``PreconditionFailed`` and the change is redone on a
fresh read.

Limits (docs/aws.md): by default a key group holds 5 public keys and a cache
behavior trusts 4 key groups; changes reach the edges in minutes. The
gateway's own verifier refuses a revoked key on the next request.

boto3 blocks, so each operation runs in a thread; its errors become the
gateway's (``Conflict`` for a full group or a key still in use, ``ConfigError``
for a missing group or denied access, ``Unavailable`` otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config import Config
from gateway.errors import ConfigError, Conflict, GatewayError, Unavailable

_ATTEMPTS = 5  # reads and conditional writes of one key group before giving up on a busy writer
_CONFLICTS = frozenset({"TooManyPublicKeysInKeyGroup", "TooManyPublicKeys", "PublicKeyInUse", "InvalidArgument"})
_REFUSALS = frozenset({"NoSuchResource", "AccessDenied", "AccessDeniedException", "InvalidIfMatchVersion"})


@dataclass(frozen=True)
class Unpublished:
    public_key_id: str
    removed_from_group: bool  # False: it was not in the group (any more)
    deleted: bool  # False: the public key was already gone


class KeyGroup(Protocol):
    """A CDN key group the gateway adds keys to and removes them from."""

    @property
    def group_id(self) -> str: ...

    async def publish(self, name: str, public_pem: str, comment: str) -> str:
        """Upload the public key (once per ``name``) and add it to the group; returns the CDN's id for it."""
        ...

    async def unpublish(self, public_key_id: str) -> Unpublished: ...


def with_key(items: list[str], key_id: str) -> list[str] | None:
    """The group's keys with ``key_id`` added; None when it is there already."""
    return None if key_id in items else [*items, key_id]


def without_key(items: list[str], key_id: str) -> list[str] | None:
    """The group's keys without ``key_id``; None when it is not there."""
    return [item for item in items if item != key_id] if key_id in items else None


class CloudFrontKeyGroup:
    def __init__(self, client: Any, group_id: str, attempts: int = _ATTEMPTS) -> None:
        self._client = client
        self._group_id = group_id
        self._attempts = attempts

    @property
    def group_id(self) -> str:
        return self._group_id

    async def publish(self, name: str, public_pem: str, comment: str) -> str:
        return await asyncio.to_thread(self._publish, name, public_pem, comment)

    async def unpublish(self, public_key_id: str) -> Unpublished:
        return await asyncio.to_thread(self._unpublish, public_key_id)

    def _publish(self, name: str, public_pem: str, comment: str) -> str:
        created, key_id = self._create_public_key(name, public_pem, comment)
        try:
            self._change_group(lambda items: with_key(items, key_id))
        except GatewayError:
            if created:  # not left behind at CloudFront, where it would count against the account's quota
                with suppress(GatewayError):
                    self._delete_public_key(key_id)
            raise
        return key_id

    def _unpublish(self, public_key_id: str) -> Unpublished:
        removed = self._change_group(lambda items: without_key(items, public_key_id))
        return Unpublished(public_key_id, removed, self._delete_public_key(public_key_id))

    def _create_public_key(self, name: str, public_pem: str, comment: str) -> tuple[bool, str]:
        config = {"CallerReference": name, "Name": name, "EncodedKey": public_pem, "Comment": comment[:128]}
        try:
            with _cloudfront("CreatePublicKey", "PublicKeyAlreadyExists"):
                return True, str(self._client.create_public_key(PublicKeyConfig=config)["PublicKey"]["Id"])
        except _Handled:
            return False, self._find_public_key(name)  # made by an earlier attempt with this CallerReference

    def _find_public_key(self, name: str) -> str:
        marker: dict[str, str] = {}
        while True:
            with _cloudfront("ListPublicKeys"):
                page = self._client.list_public_keys(**marker).get("PublicKeyList", {})
            for item in page.get("Items") or []:
                if item.get("Name") == name:
                    return str(item["Id"])
            if not page.get("NextMarker"):
                raise Conflict(f"CloudFront says a public key named {name} exists but does not list it; try again")
            marker = {"Marker": str(page["NextMarker"])}

    def _change_group(self, change: Callable[[list[str]], list[str] | None]) -> bool:
        """Read the group, change its keys, write it back if unchanged since (IfMatch); False: nothing to do."""
        for _ in range(self._attempts):
            with _cloudfront("GetKeyGroup"):
                found = self._client.get_key_group(Id=self._group_id)
            config, etag = found["KeyGroup"]["KeyGroupConfig"], found["ETag"]
            items = change(list(config.get("Items") or []))
            if items is None:
                return False
            try:
                with _cloudfront("UpdateKeyGroup", "PreconditionFailed"):
                    new = {**config, "Items": items}
                    self._client.update_key_group(Id=self._group_id, IfMatch=etag, KeyGroupConfig=new)
                return True
            except _Handled:
                continue  # another writer changed the group since we read it: read it again
        raise Unavailable(f"CloudFront key group {self._group_id} kept changing under us; try again")

    def _delete_public_key(self, public_key_id: str) -> bool:
        """Delete it with the ETag just read; False when it is already gone."""
        for _ in range(self._attempts):
            try:
                with _cloudfront("GetPublicKey", "NoSuchPublicKey"):
                    etag = self._client.get_public_key(Id=public_key_id)["ETag"]
                with _cloudfront("DeletePublicKey", "NoSuchPublicKey", "PreconditionFailed"):
                    self._client.delete_public_key(Id=public_key_id, IfMatch=etag)
                return True
            except _Handled as handled:
                if handled.code == "NoSuchPublicKey":
                    return False
        raise Unavailable(f"CloudFront public key {public_key_id} kept changing under us; try again")


class _Handled(Exception):
    """Not a failure: a CloudFront answer the caller handles itself."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def _cloudfront(operation: str, *handled: str) -> Iterator[None]:
    """boto3's errors as the gateway's; the codes in ``handled`` as ``_Handled``, for the caller."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise ConfigError("CloudFront: no AWS credentials found (environment, shared config file or role)") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "error")), str(error.get("Message", ""))
        if code in handled:
            raise _Handled(code) from None
        raise _as_gateway_error(operation, code, message) from None
    except BotoCoreError as exc:
        raise Unavailable(f"CloudFront is unreachable ({operation}): {exc}") from None


def _as_gateway_error(operation: str, code: str, message: str) -> GatewayError:
    text = f"CloudFront refused {operation}: {code} {message}".strip()
    if code == "TooManyPublicKeysInKeyGroup":
        text += " (a key group holds 5 keys by default: unpublish a retired key first, or raise the quota)"
    if code in _CONFLICTS:
        return Conflict(text)
    if code in _REFUSALS:
        return ConfigError(text + " (check cloudfront.key_group_id and the IAM policy)")
    return Unavailable(text)


def cloudfront_key_group(config: Config) -> CloudFrontKeyGroup | None:
    """The configured key group (``cloudfront.key_group_id``), or None when the gateway manages none."""
    if not config.cloudfront_key_group_id:
        return None
    import boto3
    from botocore.config import Config as BotoConfig

    settings = BotoConfig(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"})
    client = boto3.client(
        "cloudfront", region_name="us-east-1", endpoint_url=config.cloudfront_endpoint_url or None, config=settings
    )
    return CloudFrontKeyGroup(client, config.cloudfront_key_group_id)
