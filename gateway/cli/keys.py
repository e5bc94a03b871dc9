"""gatewayctl keys create|list|show|revoke|rotate|link|export-secret|publish-cloudfront|unpublish-cloudfront."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from gateway.admin.keys import CdnChange
from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit, table, when, write_private
from gateway.cli.timeparse import instant
from gateway.errors import NotFound
from gateway.keys.material import b64url, public_pem
from gateway.model import KeyAlgorithm, SigningKey
from gateway.web.parsing import choice


def key_json(key: SigningKey, now: float) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "principal": key.principal_id,
        "algorithm": key.algorithm.value,
        "state": key.state(now).value,
        "public_key": b64url(key.public_key) if key.public_key else None,
        "created_at": key.created_at,
        "not_after": key.not_after,
        "revoked_at": key.revoked_at,
        "revoked_reason": key.revoked_reason,
        "revoked_by": key.revoked_by,
        "last_used_at": key.last_used_at,
        "external_id": key.external_id,
        "public_pem": public_pem(key.algorithm, key.public_key) if key.public_key else None,
    }


def _show(key: SigningKey, cli: Cli, verb: str) -> int:
    data = key_json(key, cli.now)
    emit(data, as_json=cli.json, text=f"{verb} {key.kid} ({key.algorithm.value}) for {key.principal_id}")
    return 0


async def run_create(cli: Cli) -> int:
    algorithm = choice(KeyAlgorithm, cli.args.algorithm, "--algorithm")
    not_after = instant(cli.args.not_after) if cli.args.not_after else None
    key = await cli.services.admin.create_key(
        cli.ctx, cli.args.principal, algorithm, cli.now, not_after, external_id=cli.args.external_id
    )
    return _show(key, cli, "created key")


async def run_link(cli: Cli) -> int:
    key = await cli.services.admin.link_key(cli.ctx, cli.args.kid, cli.args.external_id, cli.now)
    return _show(key, cli, f"linked {key.external_id} to key")


def secret_text(algorithm: KeyAlgorithm, secret: bytes) -> str:
    """The form a CDN's own tooling takes: PEM for key pairs, base64url otherwise."""
    if algorithm in (KeyAlgorithm.RSA_2048, KeyAlgorithm.ECDSA_P256):
        private = load_der_private_key(secret, None)
        return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode().strip()
    if algorithm is KeyAlgorithm.ED25519:
        private = Ed25519PrivateKey.from_private_bytes(secret)
        return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode().strip()
    return base64.urlsafe_b64encode(secret).decode()


async def run_export(cli: Cli) -> int:
    key, secret = await cli.services.admin.export_secret(cli.ctx, cli.args.kid, cli.args.reason, cli.now)
    write_private(Path(cli.args.out), secret_text(key.algorithm, secret))
    emit(
        {"kid": key.kid, "file": cli.args.out},
        as_json=cli.json,
        text=f"wrote {key.kid} to {cli.args.out} (mode 0600)",
    )
    return 0


async def run_rotate(cli: Cli) -> int:
    key = await cli.services.admin.rotate_key(cli.ctx, cli.args.principal, cli.now)
    return _show(key, cli, "new signing key")


# A revocation whose CloudFront step failed: the gateway side is done, the CDN (a service) was unavailable.
EXIT_CDN_NOT_UPDATED = 69


async def run_revoke(cli: Cli) -> int:
    revoked = await cli.services.admin.revoke_key(cli.ctx, cli.args.kid, cli.args.reason, cli.now)
    key = revoked.key
    data = key_json(key, cli.now)
    lines = [f"revoked key {key.kid} ({key.algorithm.value}) for {key.principal_id}: refused from the next request"]
    if revoked.cdn is not None:
        data["cloudfront"] = _cdn_json(revoked.cdn)
        lines.append(_cdn_text(revoked.cdn))
    emit(data, as_json=cli.json, text=lines)
    return _cdn_exit(revoked.cdn, key.kid)


def _cdn_json(change: CdnChange) -> dict[str, Any]:
    return {
        "public_key_id": change.public_key_id,
        "removed_from_group": change.removed_from_group,
        "deleted": change.deleted,
        "error": change.error,
    }


def _cdn_text(change: CdnChange) -> str:
    if change.error is not None:
        return f"CloudFront public key {change.public_key_id} NOT removed: {change.error}"
    if not (change.removed_from_group or change.deleted):
        return f"CloudFront public key {change.public_key_id} was already gone"
    return f"CloudFront public key {change.public_key_id} removed from the key group and deleted (edges: minutes)"


def _cdn_exit(change: CdnChange | None, kid: str) -> int:
    if change is None or change.error is None:
        return 0
    print(f"gatewayctl: retry the CloudFront step with: gatewayctl keys unpublish-cloudfront {kid}", file=sys.stderr)
    return EXIT_CDN_NOT_UPDATED


async def run_publish(cli: Cli) -> int:
    key = await cli.services.admin.publish_key(cli.ctx, cli.args.kid, cli.now)
    text = f"published key {key.kid} to CloudFront as {key.external_id} (Key-Pair-Id); edges see it within minutes"
    emit(key_json(key, cli.now), as_json=cli.json, text=text)
    return 0


async def run_unpublish(cli: Cli) -> int:
    change = await cli.services.admin.unpublish_key(cli.ctx, cli.args.kid, cli.now)
    emit({"kid": cli.args.kid, "cloudfront": _cdn_json(change)}, as_json=cli.json, text=_cdn_text(change))
    return _cdn_exit(change, cli.args.kid)


async def run_list(cli: Cli) -> int:
    principal = cli.args.principal
    if principal is not None and await cli.services.store.principals.get(principal) is None:
        raise NotFound(f"no principal {principal!r}")  # not an empty list: the id was mistyped
    keys = await cli.services.store.keys.all(principal)
    data = [key_json(k, cli.now) for k in keys]
    rows = [{**d, "created": when(d["created_at"]), "last_used": when(d["last_used_at"])} for d in data]
    emit(
        data,
        as_json=cli.json,
        text=table(rows, ["kid", "principal", "algorithm", "state", "created", "last_used"]),
    )
    return 0


async def run_show(cli: Cli) -> int:
    key = await cli.services.store.keys.get(cli.args.kid)
    if key is None:
        raise NotFound(f"no key {cli.args.kid!r}")
    data = key_json(key, cli.now)
    text = [f"{k:15} {when(v) if k.endswith('_at') and v else v}" for k, v in data.items()]
    emit(data, as_json=cli.json, text=text)
    return 0


# Every KeyAlgorithm, with where it is used: --algorithm's help lists them all (a new one needs its entry).
_USED_BY = {
    KeyAlgorithm.ED25519: "default; native, Media CDN",
    KeyAlgorithm.HMAC_SHA256: "native",
    KeyAlgorithm.RSA_2048: "CloudFront",
    KeyAlgorithm.ECDSA_P256: "CloudFront",
    KeyAlgorithm.HMAC_SHA1: "Cloud CDN",
    KeyAlgorithm.SHARED_SECRET: "a CDN's one secret: Akamai, nginx, Wowza, Nimble, Bunny",
}


def _algorithm_help() -> str:
    return ", ".join(f"{algorithm.value} ({_USED_BY[algorithm]})" for algorithm in KeyAlgorithm)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    group = sub.add_parser("keys", help="per-principal URL-signing keys")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = cmds.add_parser("create", parents=[common], help="create a signing key for a principal")
    create.add_argument("--principal", required=True, help="whose key it is")
    create.add_argument("--algorithm", default="ed25519", help=_algorithm_help())
    create.add_argument("--not-after", metavar="TIME", help="expiry (epoch seconds or ISO 8601)")
    create.add_argument("--external-id", help="the CDN's id for this key (CloudFront Key-Pair-Id, Cloud CDN KeyName)")
    create.set_defaults(func=run_create)
    link = cmds.add_parser(
        "link", parents=[common],
        help="record the CDN's id for a key, after uploading its public key (CloudFront) or secret (Cloud CDN)",
    )  # fmt: skip
    link.add_argument("kid", help="the gateway key id (gwk_…)")
    link.add_argument("external_id", help="e.g. K2JCJMDEHXQW5F (CloudFront) or my-key (Cloud CDN KeyName)")
    link.set_defaults(func=run_link)
    export = cmds.add_parser(
        "export-secret", parents=[common],
        help="write a key's private material to a 0600 file, for a CDN that shares it (audited)",
        description="Cloud CDN verifies with the same HMAC key the gateway signs with, so the key must be "
        "installed there (gcloud compute backend-services add-signed-url-key --key-file FILE). "
        "Every export is an audited key:exported event with its reason.",
    )  # fmt: skip
    export.add_argument("kid", help="the gateway key id (gwk_…)")
    export.add_argument("--reason", required=True, help="why the secret leaves the gateway (logged)")
    export.add_argument("--out", required=True, metavar="FILE", help="created with mode 0600; never overwritten")
    export.set_defaults(func=run_export)
    lst = cmds.add_parser("list", parents=[reading], help="list keys")
    lst.add_argument("--principal", help="only this principal's keys")
    lst.set_defaults(func=run_list)
    show = cmds.add_parser("show", parents=[reading], help="show one key")
    show.add_argument("kid", help="the key id (gwk_…)")
    show.set_defaults(func=run_show)
    revoke = cmds.add_parser(
        "revoke", parents=[common], help="revoke a key: takes effect on the next request, everywhere",
    )  # fmt: skip
    revoke.add_argument("kid", help="the key id (gwk_…)")
    revoke.add_argument("--reason", required=True, help="why (kept in the audit log)")
    revoke.set_defaults(func=run_revoke)
    _register_cloudfront(cmds, common)
    rotate = cmds.add_parser(
        "rotate", parents=[common],
        help="create a new key that signs from now on; older keys still verify until revoked",
    )  # fmt: skip
    rotate.add_argument("--principal", required=True, help="whose key to rotate")
    rotate.set_defaults(func=run_rotate)


def _register_cloudfront(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    publish = cmds.add_parser(
        "publish-cloudfront", parents=[common],
        help="upload a key's public half to CloudFront, add it to the key group, link its Key-Pair-Id",
        description="Needs cloudfront.key_group_id. CreatePublicKey (CallerReference = the kid, so a retry "
        "reuses it), then UpdateKeyGroup with the group's ETag (redone if another writer changed it). "
        "A key group holds 5 keys by default. Revoking the key later removes it again. Audited as key:published.",
    )  # fmt: skip
    publish.add_argument("kid", help="an active rsa-2048 or ecdsa-p256 key (gwk_…), not yet linked")
    publish.set_defaults(func=run_publish)
    unpublish = cmds.add_parser(
        "unpublish-cloudfront", parents=[common],
        help="take a revoked key out of the CloudFront key group and delete its public key (retry after a failure)",
        description="'keys revoke' does this itself; run this when it reported that CloudFront was not updated. "
        "Exit 69 if CloudFront still cannot be changed. Audited as key:unpublished or key:unpublish_failed.",
    )  # fmt: skip
    unpublish.add_argument("kid", help="a revoked or expired key (gwk_…) linked to a CloudFront public key")
    unpublish.set_defaults(func=run_unpublish)
