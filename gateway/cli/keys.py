"""gatewayctl keys create|list|show|revoke|rotate."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from gateway.cli.context import Cli
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


async def run_revoke(cli: Cli) -> int:
    key = await cli.services.admin.revoke_key(cli.ctx, cli.args.kid, cli.args.reason, cli.now)
    return _show(key, cli, "revoked key")


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("keys", help="per-principal URL-signing keys")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = cmds.add_parser("create", parents=[common], help="create a signing key for a principal")
    create.add_argument("--principal", required=True, help="whose key it is")
    create.add_argument(
        "--algorithm", default="ed25519",
        help="ed25519 (default; native, Media CDN), hmac-sha256 (native), rsa-2048 or ecdsa-p256 "
        "(CloudFront), hmac-sha1 (Cloud CDN)",
    )  # fmt: skip
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
    lst = cmds.add_parser("list", parents=[common], help="list keys")
    lst.add_argument("--principal", help="only this principal's keys")
    lst.set_defaults(func=run_list)
    show = cmds.add_parser("show", parents=[common], help="show one key")
    show.add_argument("kid", help="the key id (gwk_…)")
    show.set_defaults(func=run_show)
    revoke = cmds.add_parser(
        "revoke", parents=[common], help="revoke a key: takes effect on the next request, everywhere",
    )  # fmt: skip
    revoke.add_argument("kid", help="the key id (gwk_…)")
    revoke.add_argument("--reason", required=True, help="why (kept in the audit log)")
    revoke.set_defaults(func=run_revoke)
    rotate = cmds.add_parser(
        "rotate", parents=[common],
        help="create a new key that signs from now on; older keys still verify until revoked",
    )  # fmt: skip
    rotate.add_argument("--principal", required=True, help="whose key to rotate")
    rotate.set_defaults(func=run_rotate)
