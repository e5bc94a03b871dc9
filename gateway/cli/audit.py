"""gatewayctl audit tail|search."""

from __future__ import annotations

import argparse

from gateway.audit import AuditEvent, AuditRecord
from gateway.cli.context import Cli
from gateway.cli.output import emit, when
from gateway.cli.timeparse import instant
from gateway.store.base import AuditQuery
from gateway.web.parsing import choice


def _line(record: AuditRecord) -> str:
    fields = [f"#{record.seq}", when(record.time), record.event.value, f"actor={record.actor}"]
    for name in ("kid", "media_id", "rendition", "subject", "decision", "reason", "client_ip"):
        value = getattr(record, name)
        if value is not None:
            fields.append(f"{name}={value}")
    return " ".join(fields)


def _emit(cli: Cli, records: list[AuditRecord]) -> int:
    data = [r.to_dict() for r in records]
    emit(data, as_json=cli.json, text="\n".join(_line(r) for r in records) or "(no records)")
    return 0


async def run_tail(cli: Cli) -> int:
    return _emit(cli, await cli.services.store.audit.tail(cli.args.n))


async def run_search(cli: Cli) -> int:
    args = cli.args
    query = AuditQuery(
        event=choice(AuditEvent, args.event, "--event").value if args.event else None,
        actor=args.actor_filter,
        kid=args.kid,
        media_id=args.media,
        subject=args.subject,
        since=instant(args.since) if args.since else None,
        until=instant(args.until) if args.until else None,
        limit=args.limit,
    )
    return _emit(cli, await cli.services.store.audit.search(query))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("audit", help="read the audit log")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = cmds.add_parser("tail", parents=[common], help="the newest records")
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")
    tail.set_defaults(func=run_tail)
    search = cmds.add_parser("search", parents=[common], help="records matching every filter given")
    search.add_argument("--event", help="event tag, e.g. url:issued, key:revoked")
    search.add_argument("--by", dest="actor_filter", metavar="ACTOR", help="who acted (principal or cli:user)")
    search.add_argument("--kid")
    search.add_argument("--media")
    search.add_argument("--subject")
    search.add_argument("--since", metavar="TIME", help="epoch seconds or ISO 8601")
    search.add_argument("--until", metavar="TIME")
    search.add_argument("--limit", type=int, default=100)
    search.set_defaults(func=run_search)
