"""AWS for tests: moto's server on loopback (never AWS), and what moto 5 lacks of CloudFront's key-group API.

``moto_endpoint`` (a fixture, offered by conftest.py) starts one
``ThreadedMotoServer`` for the run on 127.0.0.1 (S3, KMS, IAM and CloudFront
behind one URL; tests name their own buckets, keys and groups) and points boto3's
credential chain at dummy keys, so the gateway's own clients (which read the
usual AWS chain) talk to it with the endpoint URL from its config.

moto 5.2 implements CreatePublicKey, GetPublicKey, DeletePublicKey,
CreateKeyGroup and GetKeyGroup, but not UpdateKeyGroup; its DeletePublicKey
ignores ``IfMatch`` and a key still in a group; a second CreatePublicKey with
the same CallerReference makes a second key; and a missing key or group is a
500. ``_complete_moto_cloudfront`` adds those behaviours as AWS's API
reference describes them (ETag checked with ``IfMatch``, a new ETag on every
change, ``PreconditionFailed``, ``PublicKeyInUse``, ``PublicKeyAlreadyExists``,
``NoSuchPublicKey``, ``NoSuchResource``, 5 keys per group): the one part of
these tests that is ours, not moto's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

REGION = "us-east-1"


def _require_moto() -> Any:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        from tests.conftest import require_service

        require_service("moto server (pip install 'moto[server]')")
        raise
    return ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server_class = _require_moto()
    _complete_moto_cloudfront()
    server = server_class(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    yield f"http://{host}:{port}"
    server.stop()


def client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _complete_moto_cloudfront() -> None:
    from moto.cloudfront.exceptions import CloudFrontException as ServiceException  # its module names the service
    from moto.cloudfront.models import CloudFrontBackend, KeyGroup, PublicKey, random_id
    from moto.cloudfront.responses import CloudFrontResponse
    from moto.core.responses import ActionResult, EmptyResult

    if getattr(CloudFrontResponse, "update_key_group", None) is not None:
        return

    def key_group(backend: CloudFrontBackend, group_id: str) -> KeyGroup:
        if group_id not in backend.key_groups:
            raise ServiceException("NoSuchResource", f"The key group {group_id} does not exist.")
        return backend.key_groups[group_id]

    def public_key(backend: CloudFrontBackend, key_id: str) -> PublicKey:
        if key_id not in backend.public_keys:
            raise ServiceException("NoSuchPublicKey", f"The public key {key_id} does not exist.")
        return backend.public_keys[key_id]

    def check_etag(current: str, if_match: str | None) -> None:
        if not if_match:
            raise ServiceException("InvalidIfMatchVersion", "The If-Match version is missing or not valid.")
        if if_match != current:
            raise ServiceException("PreconditionFailed", "The precondition in one or more header fields is false.")

    def update_key_group(self: CloudFrontResponse) -> ActionResult:
        group = key_group(self.backend, self._get_param("Id"))
        check_etag(group.etag, self.headers.get("If-Match"))
        items = self._get_param("KeyGroupConfig.Items", [])
        if not items:  # CreateKeyGroup: "you must specify at least one public key"
            raise ServiceException("InvalidArgument", "A key group must contain at least one public key.")
        unknown = [i for i in items if i not in self.backend.public_keys]
        if unknown:
            raise ServiceException("NoSuchPublicKey", f"The public key {unknown[0]} does not exist.")
        if len(items) > 5:  # the default quota
            raise ServiceException("TooManyPublicKeysInKeyGroup", "The number of public keys is more than allowed.")
        group.items, group.name, group.etag = items, self._get_param("KeyGroupConfig.Name"), random_id(length=14)
        return ActionResult({"KeyGroup": group, "ETag": group.etag})

    create_public_key = CloudFrontResponse.create_public_key

    def create_public_key_once(self: CloudFrontResponse) -> ActionResult:
        reference = self._get_param("PublicKeyConfig")["CallerReference"]
        if any(key.caller_ref == reference for key in self.backend.public_keys.values()):
            raise ServiceException("PublicKeyAlreadyExists", "The specified public key already exists.")
        return create_public_key(self)

    def get_key_group(self: CloudFrontResponse) -> ActionResult:
        group = key_group(self.backend, self._get_param("Id"))
        return ActionResult({"KeyGroup": group, "ETag": group.etag})

    def get_public_key(self: CloudFrontResponse) -> ActionResult:
        key = public_key(self.backend, self._get_param("Id"))
        return ActionResult({"PublicKey": key, "ETag": key.etag})

    def delete_public_key(self: CloudFrontResponse) -> EmptyResult:
        key = public_key(self.backend, self._get_param("Id"))
        check_etag(key.etag, self.headers.get("If-Match"))
        if any(key.id in group.items for group in self.backend.key_groups.values()):
            raise ServiceException("PublicKeyInUse", "The public key is in use by a key group.")
        del self.backend.public_keys[key.id]
        return EmptyResult()

    CloudFrontResponse.create_public_key = create_public_key_once  # type: ignore[method-assign]
    CloudFrontResponse.update_key_group = update_key_group  # type: ignore[attr-defined]
    CloudFrontResponse.get_key_group = get_key_group  # type: ignore[method-assign]
    CloudFrontResponse.get_public_key = get_public_key  # type: ignore[method-assign]
    CloudFrontResponse.delete_public_key = delete_public_key  # type: ignore[method-assign]
