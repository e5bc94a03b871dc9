"""gatewayctl media put|show|delete|revoke-links."""

from __future__ import annotations

import argparse

from gateway.cli.context import Cli, common_parser
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
        choice(Visibility, args.visibility, "--visibility"), paths, cli.now, prefixes=_prefixes(args),
    )  # fmt: skip
    revoked = " (links issued until now revoked: fewer people may see it)" if item.links_revoked_at == cli.now else ""
    emit(media_json(item), as_json=cli.json, text=f"media {item.id} saved ({item.visibility.value}){revoked}")
    return 0


def _prefixes(args: argparse.Namespace) -> dict[Rendition, str] | None:
    """None: the default claim; --no-prefix: none; --video-prefix/--thumbnail-prefix: those directories."""
    given = {r: p for r, p in ((Rendition.VIDEO, args.video_prefix), (Rendition.THUMBNAIL, args.thumbnail_prefix)) if p}
    if args.no_prefix and given:
        raise InvalidInput("--no-prefix and a --*-prefix directory contradict each other")
    return {} if args.no_prefix else (given or None)


async def run_revoke_links(cli: Cli) -> int:
    item = await cli.services.admin.revoke_links(cli.ctx, cli.args.id, cli.args.reason, cli.now)
    text = f"links to media {item.id} issued until now are revoked; new ones are issued as before"
    emit(media_json(item), as_json=cli.json, text=text)
    return 0


async def run_show(cli: Cli) -> int:
    item = await cli.services.store.media.get(cli.args.id)
    if item is None or item.deleted:
        raise NotFound(f"no media item {cli.args.id!r}")
    data = media_json(item)
    emit(data, as_json=cli.json, text=[f"{k:11} {v}" for k, v in data.items()])
    return 0


async def run_delete(cli: Cli) -> int:
    await cli.services.admin.delete_media(cli.ctx, cli.args.id, cli.now)
    emit({"id": cli.args.id, "deleted": True}, as_json=cli.json, text=f"media {cli.args.id} deleted")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    group = sub.add_parser("media", help="the media catalogue")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = cmds.add_parser("put", parents=[common], help="create or replace a media item")
    put.add_argument("id", help="the media id")
    put.add_argument("--owner", required=True, help="owner's viewer subject")
    put.add_argument("--workspace", required=True, help="the workspace it belongs to")
    put.add_argument("--visibility", default="private", help="private, workspace, unlisted or public")
    put.add_argument("--video", metavar="PATH", help="storage path of the video rendition")
    put.add_argument("--thumbnail", metavar="PATH", help="storage path of the thumbnail")
    put.add_argument("--video-prefix", metavar="DIR",
                     help="the directory the video's prefix-scoped URLs cover (default: its directory when named "
                     "after the item, e.g. /v/ID/)")  # fmt: skip
    put.add_argument("--thumbnail-prefix", metavar="DIR", help="the same for the thumbnail rendition")
    put.add_argument("--no-prefix", action="store_true", help="no prefix-scoped URLs for this item")
    put.set_defaults(func=run_put)
    revoke = cmds.add_parser(
        "revoke-links", parents=[common], help="revoke every URL issued for an item until now (audited)",
        description="Every URL issued for the item until now stops verifying at the gateway's verifier, on every "
        "replica; new URLs are issued as before. Formats whose signature covers no issue time (google-cdn, nginx, "
        "bunny) are bounded by their expiry only (docs/dialects.md).",
    )  # fmt: skip
    revoke.add_argument("id", help="the media id")
    revoke.add_argument("--reason", required=True, help="why (kept in the audit log)")
    revoke.set_defaults(func=run_revoke_links)
    show = cmds.add_parser("show", parents=[reading], help="show a media item")
    show.add_argument("id", help="the media id")
    show.set_defaults(func=run_show)
    delete = cmds.add_parser("delete", parents=[common], help="delete a media item: issuance stops at once")
    delete.add_argument("id", help="the media id")
    delete.set_defaults(func=run_delete)
