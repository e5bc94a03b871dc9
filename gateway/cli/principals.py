"""gatewayctl principals add|list|disable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.admin import new_credential
from gateway.cli.context import Cli, common_parser
from gateway.cli.credentials import save_then_store
from gateway.cli.output import emit, table, when
from gateway.model import Permission, Principal, PrincipalKind, Rendition, check_name
from gateway.web.parsing import choice


def principal_json(p: Principal) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind.value,
        "permissions": sorted(p.permissions),
        "renditions": None if p.renditions is None else sorted(p.renditions),
        "created_at": p.created_at,
        "disabled_at": p.disabled_at,
    }


async def run_add(cli: Cli) -> int:
    args = cli.args
    permissions = frozenset(choice(Permission, p, "--perm") for p in args.perm or ["sign"])
    renditions = frozenset(choice(Rendition, r, "--rendition") for r in args.rendition) if args.rendition else None
    kind = choice(PrincipalKind, args.kind, "--kind")
    principal_id = check_name(args.id, "principal id")
    path = Path(args.credential_out) if args.credential_out else cli.config.keys_dir / "credentials" / f"{args.id}.json"
    made = new_credential(principal_id, cli.now)
    created = await save_then_store(
        cli, made, path,
        lambda: cli.services.admin.add_principal(cli.ctx, principal_id, kind, permissions, renditions, cli.now, made),
    )  # fmt: skip
    result = {
        **principal_json(created.principal),
        "credential_id": created.credential.id,
        "credential_file": str(path),
    }
    emit(
        result,
        as_json=cli.json,
        text=f"principal {args.id} created; credential written to {path} (mode 0600)",
    )
    return 0


async def run_list(cli: Cli) -> int:
    principals = await cli.services.store.principals.all()
    rows = [
        {**principal_json(p), "permissions": ",".join(sorted(p.permissions)),
         "renditions": "all" if p.renditions is None else ",".join(sorted(p.renditions)),
         "disabled": when(p.disabled_at)}
        for p in principals
    ]  # fmt: skip
    text = table(rows, ["id", "kind", "permissions", "renditions", "disabled"])
    emit([principal_json(p) for p in principals], as_json=cli.json, text=text)
    return 0


async def run_disable(cli: Cli) -> int:
    await cli.services.admin.disable_principal(cli.ctx, cli.args.id, cli.now)
    emit({"id": cli.args.id, "disabled": True}, as_json=cli.json, text=f"principal {cli.args.id} disabled")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    group = sub.add_parser("principals", help="engineers and services that may sign")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = cmds.add_parser(
        "add", parents=[common], help="create a principal and its API credential",
        description="Create a principal. Its API credential's private half is written to "
        "--credential-out (default keys/credentials/ID.json, mode 0600) and never stored by the gateway.",
    )  # fmt: skip
    add.add_argument("id", help="principal id, e.g. alice or svc-web")
    add.add_argument("--kind", default="service", help="engineer or service (default service)")
    add.add_argument(
        "--perm", action="append", help="sign, sign:on-behalf, media:write, admin (repeatable; default sign)"
    )
    add.add_argument("--rendition", action="append", help="limit signing to this rendition (repeatable)")
    add.add_argument("--credential-out", metavar="FILE", help="where to write the credential")
    add.set_defaults(func=run_add)
    lst = cmds.add_parser("list", parents=[reading], help="list principals")
    lst.set_defaults(func=run_list)
    disable = cmds.add_parser(
        "disable", parents=[common], help="disable a principal (its tokens and URLs stop working)"
    )
    disable.add_argument("id", help="the principal")
    disable.set_defaults(func=run_disable)
