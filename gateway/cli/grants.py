"""gatewayctl grants add|list|revoke: time-boxed access for engineers, with a reason."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit, table, when
from gateway.cli.timeparse import duration
from gateway.errors import NotFound
from gateway.model import Grant


def grant_json(grant: Grant, now: float) -> dict[str, Any]:
    return {
        "id": grant.id,
        "principal": grant.principal_id,
        "media_id": grant.media_id,
        "reason": grant.reason,
        "created_by": grant.created_by,
        "created_at": grant.created_at,
        "expires_at": grant.expires_at,
        "revoked_at": grant.revoked_at,
        "live": grant.live(now),
    }


async def run_add(cli: Cli) -> int:
    args = cli.args
    grant = await cli.services.admin.add_grant(
        cli.ctx, args.principal, args.media, args.reason, duration(args.duration), cli.now
    )
    text = f"grant {grant.id}: {grant.principal_id} may sign {grant.media_id} until {when(grant.expires_at)}"
    emit(grant_json(grant, cli.now), as_json=cli.json, text=text)
    return 0


async def run_list(cli: Cli) -> int:
    principal = cli.args.principal
    if principal is not None and await cli.services.store.principals.get(principal) is None:
        raise NotFound(f"no principal {principal!r}")  # not an empty list: the id was mistyped
    grants = await cli.services.store.grants.all(principal)
    data = [grant_json(g, cli.now) for g in grants]
    rows = [{**d, "expires": when(d["expires_at"])} for d in data]
    emit(data, as_json=cli.json, text=table(rows, ["id", "principal", "media_id", "live", "expires", "reason"]))
    return 0


async def run_revoke(cli: Cli) -> int:
    await cli.services.admin.revoke_grant(cli.ctx, cli.args.grant_id, cli.now)
    emit(
        {"id": cli.args.grant_id, "revoked": True},
        as_json=cli.json,
        text=f"grant {cli.args.grant_id} revoked",
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    group = sub.add_parser("grants", help="time-boxed access grants for engineers")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = cmds.add_parser("add", parents=[common], help="let an engineer sign for a media item for a while")
    add.add_argument("--principal", required=True, help="the engineer")
    add.add_argument("--media", required=True, help="media id")
    add.add_argument("--reason", required=True, help="why (required; logged)")
    add.add_argument("--duration", default="1h", help="how long, e.g. 30m, 4h (max 7d; default 1h)")
    add.set_defaults(func=run_add)
    lst = cmds.add_parser("list", parents=[reading], help="list grants")
    lst.add_argument("--principal", help="only this engineer's grants")
    lst.set_defaults(func=run_list)
    revoke = cmds.add_parser("revoke", parents=[common], help="end a grant now")
    revoke.add_argument("grant_id", help="the grant (gwg_…)")
    revoke.set_defaults(func=run_revoke)
