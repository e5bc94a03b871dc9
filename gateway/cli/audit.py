"""gatewayctl audit tail|search|verify|checkpoint|prune."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.audit.checkpoints import load_public_keys
from gateway.audit.privacy import REF_PREFIX
from gateway.audit.records import AuditEvent, AuditRecord
from gateway.audit.retention import prune
from gateway.audit.verify import Progress, verify_log
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


def _subject_ref(cli: Cli, subject: str | None) -> str | None:
    # Viewers are logged under pseudonyms; operators search by the id they know.
    if subject is None or subject.startswith(REF_PREFIX):
        return subject
    return cli.services.audit_log.ref(subject)


async def run_search(cli: Cli) -> int:
    args = cli.args
    query = AuditQuery(
        event=choice(AuditEvent, args.event, "--event").value if args.event else None,
        actor=args.actor_filter,
        kid=args.kid,
        media_id=args.media,
        subject=_subject_ref(cli, args.subject),
        since=instant(args.since) if args.since else None,
        until=instant(args.until) if args.until else None,
        limit=args.limit,
    )
    return _emit(cli, await cli.services.store.audit.search(query))


def _progress_printer(enabled: bool) -> Progress:
    def show(done: int, total: int) -> None:
        if not enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done * 100 // total:3d}% {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


async def run_verify(cli: Cli) -> int:
    args = cli.args
    config = cli.config
    export_dir = Path(args.export_dir) if args.export_dir else config.export_dir
    key_files = [Path(p) for p in args.public_key] or [config.log_signing_key_path.with_suffix(".pub")]
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    report = await verify_log(cli.services.store, load_public_keys(key_files), export_dir, _progress_printer(progress))
    data = {"ok": report.ok, "records": report.records, "checkpoints_checked": report.checkpoints_checked,
            "first_bad_record": report.first_bad, "problem": report.problem, "notes": report.notes}  # fmt: skip
    if report.ok:
        text = f"ok: {report.records} records, {report.checkpoints_checked} signed checkpoints verified"
        text += "".join(f"\nnote: {n}" for n in report.notes)
    else:
        text = (
            f"FAILED at record #{report.first_bad}: {report.problem}"
            if report.first_bad
            else f"FAILED: {report.problem}"
        )
    emit(data, as_json=cli.json, text=text)
    return 0 if report.ok else 1


async def run_checkpoint(cli: Cli) -> int:
    checkpoint = await cli.services.checkpointer.write(cli.now)
    data = {"tree_size": checkpoint.tree_size, "root": checkpoint.root.hex(), "key_id": checkpoint.key_id}
    emit(data, as_json=cli.json, text=f"checkpoint at {checkpoint.tree_size} records, head {checkpoint.root.hex()}")
    return 0


async def run_prune(cli: Cli) -> int:
    now = instant(cli.args.now) if cli.args.now else cli.now
    counts = await prune(cli.services.store, cli.ctx, now, cli.config.raw_retention_days)
    text = (f"pruned {counts['records_pruned']} sealed record(s) past retention (sealed up to "
            f"#{counts['sealed_upto']}); purged {counts['raw_entries_purged']} raw log entries")  # fmt: skip
    emit(counts, as_json=cli.json, text=text)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("audit", help="read, verify, checkpoint and prune the audit log")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = cmds.add_parser("tail", parents=[common], help="the newest records")
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")
    tail.set_defaults(func=run_tail)
    search = cmds.add_parser("search", parents=[common], help="records matching every filter given")
    search.add_argument("--event", help="event tag, e.g. url:issued, key:revoked")
    search.add_argument("--by", dest="actor_filter", metavar="ACTOR", help="who acted (principal or cli:user)")
    search.add_argument("--kid", help="key id (gwk_…)")
    search.add_argument("--media", help="media id")
    search.add_argument("--subject", help="a viewer's id or its pseudonym (sub_…)")
    search.add_argument("--since", metavar="TIME", help="epoch seconds or ISO 8601")
    search.add_argument("--until", metavar="TIME", help="epoch seconds or ISO 8601")
    search.add_argument("--limit", type=int, default=100, help="at most this many records (default 100)")
    search.set_defaults(func=run_search)
    verify = cmds.add_parser(
        "verify", parents=[common],
        help="check the log against its signed checkpoints; exit 1 naming the first bad record",
        description="Walks every record in bounded memory: contents against leaf hashes, positions, "
        "tree heads against every signed checkpoint (database and export directory), exported leaf "
        "copies, prunes against retention, and the log's length against the newest checkpoint held "
        "outside the database (tail truncation).",
    )  # fmt: skip
    verify.add_argument("--export-dir", help="where checkpoints were exported (default audit.export_dir)")
    verify.add_argument("--public-key", action="append", default=[], metavar="PEM",
                        help="log-signing public key(s) (default keys/log-signing.pub)")  # fmt: skip
    verify.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")  # fmt: skip
    verify.set_defaults(func=run_verify)
    checkpoint = cmds.add_parser("checkpoint", parents=[common], help="sign and export a checkpoint now")
    checkpoint.set_defaults(func=run_checkpoint)
    prune_cmd = cmds.add_parser(
        "prune", parents=[common],
        help="enforce retention: prune sealed records past retention, purge the raw log (audited)",
        description="Viewer technical data: 90 days (30 after the subject is erased); engineer actions: "
        "6 years; the raw technical log (unmasked IPs): audit.raw_retention_days (7). Only records "
        "covered by a signed checkpoint are pruned; their leaf hashes stay, so verify stays green.",
    )  # fmt: skip
    prune_cmd.add_argument("--now", metavar="TIME", help="evaluate retention at this time (default: now)")
    prune_cmd.set_defaults(func=run_prune)
