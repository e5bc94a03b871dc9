"""Principal API credentials: the files their owners keep, and gatewayctl credentials list|rotate|revoke."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.access.credential_file import CredentialFile
from gateway.admin import NewCredential, new_credential
from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit, table, when, write_private
from gateway.errors import InvalidInput, NotFound
from gateway.model import Credential, check_name

T = TypeVar("T")


async def save_then_store(cli: Cli, made: NewCredential, path: Path, store: Callable[[], Awaitable[T]]) -> T:
    """Write the owner's file (0600, never overwriting) first, then ``store`` the credential.

    The other order could store a credential whose private half was never saved (the file
    existed, the disk was full): after ``rotate --revoke-old`` its principal would be locked out.
    """
    file = CredentialFile(made.credential.principal_id, made.credential.id, made.seed, cli.config.api_audience)
    write_private(path, file.to_json())
    try:
        return await store()
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def credential_json(c: Credential) -> dict[str, Any]:
    return {"id": c.id, "principal": c.principal_id, "created_at": c.created_at, "revoked_at": c.revoked_at}


async def run_list(cli: Cli) -> int:
    principal = cli.args.principal
    if principal is not None and await cli.services.store.principals.get(principal) is None:
        raise NotFound(f"no principal {principal!r}")
    found = await cli.services.store.principals.credentials(principal)
    data = [credential_json(c) for c in found]
    rows = [{**d, "created": when(d["created_at"]), "revoked": when(d["revoked_at"])} for d in data]
    emit(data, as_json=cli.json, text=table(rows, ["id", "principal", "created", "revoked"]))
    return 0


async def run_rotate(cli: Cli) -> int:
    args = cli.args
    if args.reason is not None and not args.revoke_old:
        raise InvalidInput("--reason goes with --revoke-old")
    made = new_credential(check_name(args.principal, "principal id"), cli.now)  # it names the file
    path = Path(args.credential_out) if args.credential_out else _rotated_path(cli, made)
    reason = (args.reason or f"rotated to {made.credential.id}") if args.revoke_old else None
    revoked = await save_then_store(
        cli, made, path, lambda: cli.services.admin.add_credential(cli.ctx, made, cli.now, reason)
    )
    data = {**credential_json(made.credential), "credential_file": str(path), "revoked": [c.id for c in revoked]}
    lines = [f"credential {made.credential.id} for {args.principal} written to {path} (mode 0600)"]
    lines += [f"revoked {c.id}: tokens signed with it are refused from now on" for c in revoked]
    emit(data, as_json=cli.json, text=lines)
    return 0


def _rotated_path(cli: Cli, made: NewCredential) -> Path:
    # Never the principal's first file name: that file exists, and credential files are never overwritten.
    return cli.config.keys_dir / "credentials" / f"{made.credential.principal_id}-{made.credential.id}.json"


async def run_revoke(cli: Cli) -> int:
    revoked = await cli.services.admin.revoke_credential(cli.ctx, cli.args.credential_id, cli.args.reason, cli.now)
    text = f"credential {revoked.id} of {revoked.principal_id} revoked: tokens signed with it are refused from now on"
    emit(credential_json(revoked), as_json=cli.json, text=text)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    group = sub.add_parser("credentials", help="principals' API credentials: list, rotate, revoke (audited)")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = cmds.add_parser("list", parents=[reading], help="list API credentials (the gateway keeps public halves only)")
    lst.add_argument("--principal", help="only this principal's credentials")
    lst.set_defaults(func=run_list)
    rotate = cmds.add_parser(
        "rotate", parents=[common], help="give a principal a new API credential, optionally revoking the old ones",
        description="Writes the new credential's private half to --credential-out (default "
        "keys/credentials/PRINCIPAL-CREDENTIAL_ID.json; mode 0600, never overwritten) before storing it. "
        "Old credentials keep working until revoked: --revoke-old revokes them in the same step.",
    )  # fmt: skip
    rotate.add_argument("principal", help="whose credential")
    rotate.add_argument("--credential-out", metavar="FILE", help="where to write the new credential")
    rotate.add_argument("--revoke-old", action="store_true", help="revoke the principal's other live credentials")
    rotate.add_argument("--reason", help="why the old ones are revoked (logged; with --revoke-old)")
    rotate.set_defaults(func=run_rotate)
    revoke = cmds.add_parser(
        "revoke", parents=[common], help="revoke an API credential: its tokens are refused on the next request",
    )  # fmt: skip
    revoke.add_argument("credential_id", help="the credential id (from 'credentials list')")
    revoke.add_argument("--reason", required=True, help="why (kept in the audit log)")
    revoke.set_defaults(func=run_revoke)
