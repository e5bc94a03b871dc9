"""gatewayctl media put|show|delete."""

from __future__ import annotations

import argparse

from gateway.cli.context import Cli
from gateway.cli.output import emit
from gateway.errors import InvalidInput, NotFound
from gateway.model import Rendition, Visibility
from gateway.web.media import media_json
from gateway.web.parsing import choice


async def run_put(cli: Cli) -> int:
    args = cli.args
    paths = {r: p for r, p in ((Rendition.VIDEO, args.video), (Rendition.THUMBNAIL, args.thumbnail)) if p}
    if not paths:
        raise InvalidInput("give --video and/or --thumbnail storage paths")
    item = await cli.services.admin.put_media(
        cli.ctx, args.id, args.owner, args.workspace,
        choice(Visibility, args.visibility, "--visibility"), paths, cli.now,
    )  # fmt: skip
    emit(media_json(item), as_json=cli.json, text=f"media {item.id} saved ({item.visibility.value})")
    return 0


async def run_show(cli: Cli) -> int:
    item = await cli.services.store.media.get(cli.args.id)
    if item is None or item.deleted:
        raise NotFound(f"no media item {cli.args.id!r}")
    data = media_json(item)
    emit(data, as_json=cli.json, text="\n".join(f"{k:11} {v}" for k, v in data.items()))
    return 0


async def run_delete(cli: Cli) -> int:
    await cli.services.admin.delete_media(cli.ctx, cli.args.id, cli.now)
    emit({"id": cli.args.id, "deleted": True}, as_json=cli.json, text=f"media {cli.args.id} deleted")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("media", help="the media catalogue")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = cmds.add_parser("put", parents=[common], help="create or replace a media item")
    put.add_argument("id", help="the media id")
    put.add_argument("--owner", required=True, help="owner's viewer subject")
    put.add_argument("--workspace", required=True, help="the workspace it belongs to")
    put.add_argument("--visibility", default="private", help="private, workspace, unlisted or public")
    put.add_argument("--video", metavar="PATH", help="storage path of the video rendition")
    put.add_argument("--thumbnail", metavar="PATH", help="storage path of the thumbnail")
    put.set_defaults(func=run_put)
    show = cmds.add_parser("show", parents=[common], help="show a media item")
    show.add_argument("id", help="the media id")
    show.set_defaults(func=run_show)
    delete = cmds.add_parser("delete", parents=[common], help="delete a media item: issuance stops at once")
    delete.add_argument("id", help="the media id")
    delete.set_defaults(func=run_delete)
