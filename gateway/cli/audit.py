"""gatewayctl audit tail|search|verify|checkpoint|prune."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.batch import BATCH_COLUMNS, batch_urls
from gateway.audit.checkpoints import load_public_keys
from gateway.audit.privacy import REF_PREFIX
from gateway.audit.publisher import publish_forever, publish_last
from gateway.audit.records import AuditEvent, AuditRecord
from gateway.audit.retention import CLOCK_SKEW, prune
from gateway.audit.verify import Progress, verify_log
from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit, when
from gateway.cli.timeparse import instant
from gateway.errors import ConfigError, InvalidInput
from gateway.store.base import AuditQuery
from gateway.store.rows import url_filters
from gateway.web.parsing import choice


def _line(record: AuditRecord) -> str:
    fields = [f"#{record.seq}", when(record.time), record.event.value, f"actor={record.actor}"]
    for name in ("kid", "media_id", "rendition", "subject", "decision", "reason", "client_ip"):
        value = getattr(record, name)
        if value is not None:
            fields.append(f"{name}={value}")
    return " ".join(fields)


def _emit(cli: Cli, records: list[AuditRecord], query: AuditQuery | None = None) -> int:
    data = [_found(r, query) for r in records]
    text = [line for r in records for line in _lines(r, query)]
    emit(data, as_json=cli.json, text=text or ["(no records)"])
    return 0


def _found(record: AuditRecord, query: AuditQuery | None) -> dict[str, Any]:
    """The record; a batch record found by its URLs names those that matched (``matched``: their positions)."""
    data = record.to_dict()
    if record.event is AuditEvent.URL_ISSUED_BATCH and query is not None and url_filters(query):
        data["matched"] = [position for position, _ in _matching(record, query)]
    return data


def _lines(record: AuditRecord, query: AuditQuery | None) -> list[str]:
    if record.event is not AuditEvent.URL_ISSUED_BATCH:
        return [_line(record)]
    urls = batch_urls(record)
    head = f"{_line(record)} urls={len(urls)}"
    shown = _matching(record, query) if query is not None and url_filters(query) else list(enumerate(urls))
    return [head, *(f"  [{position}] " + _url_fields(url) for position, url in shown)]


def _matching(record: AuditRecord, query: AuditQuery) -> list[tuple[int, tuple[Any, ...]]]:
    """The URLs of a batch record that match every URL filter of ``query`` (key, media, digest)."""
    wanted = dict(url_filters(query))
    found = []
    for url in batch_urls(record):
        fields = dict(zip(BATCH_COLUMNS, url[1:], strict=True))
        if all(fields[column] == value for column, value in wanted.items()):
            found.append((url[0], url))
    return found


def _url_fields(url: tuple[Any, ...]) -> str:
    return " ".join(f"{name}={value}" for name, value in zip(BATCH_COLUMNS, url[1:], strict=True))


def _positive(value: int, option: str) -> int:
    # SQLite reads a negative LIMIT as "no limit": -n -1 would print the whole log.
    if value < 1:
        raise InvalidInput(f"{option} must be at least 1, got {value}")
    return value


async def run_tail(cli: Cli) -> int:
    return _emit(cli, await cli.services.store.audit.tail(_positive(cli.args.n, "-n")))


def _subject_ref(cli: Cli, subject: str | None) -> str | None:
    # Viewers are logged under pseudonyms; operators search by the id they know.
    if subject is None or subject.startswith(REF_PREFIX):
        return subject
    return cli.services.audit_log.ref(subject)


async def run_search(cli: Cli) -> int:
    args = cli.args
    since, until = instant(args.since) if args.since else None, instant(args.until) if args.until else None
    if since is not None and until is not None and since >= until:
        raise InvalidInput("--since must be before --until")  # not an empty result: nothing could match
    query = AuditQuery(
        event=choice(AuditEvent, args.event, "--event").value if args.event else None,
        actor=args.actor_filter,
        kid=args.kid,
        media_id=args.media,
        subject=_subject_ref(cli, args.subject),
        since=since,
        until=until,
        limit=_positive(args.limit, "--limit"),
        url_sha256=_digest(args.url_digest),
    )
    return _emit(cli, await cli.services.store.audit.search(query), query)


def _digest(value: str | None) -> str | None:
    if value is None:
        return None
    digest = value.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput("--url-digest must be a SHA-256 in hex (64 characters): sha256 of the signed URL")
    return digest


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


def _export_dir(cli: Cli) -> Path | None:
    if cli.args.export_dir is None:
        return cli.config.export_dir
    path = Path(cli.args.export_dir)
    if not path.is_dir():
        # Not "no checkpoints outside the database": a mistyped path would hide tail truncation.
        raise InvalidInput(f"--export-dir {path} is not a directory")
    return path


def _public_keys(cli: Cli) -> dict[str, Ed25519PublicKey]:
    if cli.args.public_key:
        return load_public_keys([Path(p) for p in cli.args.public_key])
    default = cli.config.log_signing_key_path.with_suffix(".pub")
    if not default.exists():
        raise ConfigError(f"log-signing public key {default} is missing: give --public-key FILE")
    return load_public_keys([default])


async def run_verify(cli: Cli) -> int:
    args = cli.args
    keys, export_dir = _public_keys(cli), _export_dir(cli)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    services = cli.services
    report = await verify_log(
        services.store,
        keys,
        export_dir,
        _progress_printer(progress),
        now=cli.now,
        key_opens=services.audit_log.key_opens,
    )
    data = {"ok": report.ok, "records": report.records, "checkpoints_checked": report.checkpoints_checked,
            "first_bad_record": report.first_bad, "problem": report.problem, "notes": report.notes}  # fmt: skip
    if report.ok:
        text = [f"ok: {report.records} records, {report.checkpoints_checked} signed checkpoints verified"]
        text += [f"note: {n}" for n in report.notes]
    else:
        where = f" at record #{report.first_bad}" if report.first_bad else ""
        text = [f"FAILED{where}: {report.problem}"]
    emit(data, as_json=cli.json, text=text)
    return 0 if report.ok else 1


async def run_checkpoint(cli: Cli) -> int:
    if cli.args.follow:
        return await _follow(cli)
    checkpoint = await cli.services.checkpointer.write(cli.now)
    data = {"tree_size": checkpoint.tree_size, "root": checkpoint.root.hex(), "key_id": checkpoint.key_id}
    emit(data, as_json=cli.json, text=f"checkpoint at {checkpoint.tree_size} records, head {checkpoint.root.hex()}")
    return 0


async def _follow(cli: Cli) -> int:
    services = cli.services
    emit({"following": True}, as_json=cli.json, text="writing checkpoints until stopped")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    task = asyncio.create_task(publish_forever(services.store, services.checkpointer, services.clock))
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await publish_last(services.store, services.checkpointer, services.clock)
    return 0


async def run_prune(cli: Cli) -> int:
    now = instant(cli.args.now) if cli.args.now else cli.now
    if now > cli.now + CLOCK_SKEW:
        # Pruning "as of" a later day would delete records still inside their retention.
        raise InvalidInput(f"--now {cli.args.now} is in the future: prune evaluates retention at most at the present")
    counts = await prune(cli.services.store, cli.ctx, now, cli.config.raw_retention_days)
    text = (f"pruned {counts['records_pruned']} sealed record(s) past retention (sealed up to "
            f"#{counts['sealed_upto']}); purged {counts['raw_entries_purged']} raw log entries")  # fmt: skip
    emit(counts, as_json=cli.json, text=text)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    group = sub.add_parser("audit", help="read, verify, checkpoint and prune the audit log")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = cmds.add_parser("tail", parents=[reading], help="the newest records")
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")
    tail.set_defaults(func=run_tail)
    search = cmds.add_parser("search", parents=[reading], help="records matching every filter given")
    search.add_argument("--event", help="event tag, e.g. url:issued (which includes url:issued_batch), key:revoked")
    search.add_argument("--by", dest="actor_filter", metavar="ACTOR", help="who acted (principal or cli:user)")
    search.add_argument("--kid", help="key id (gwk_…)")
    search.add_argument("--media", help="media id")
    search.add_argument("--subject", help="a viewer's id or its pseudonym (sub_…)")
    search.add_argument("--url-digest", metavar="SHA256",
                        help="SHA-256 (hex) of a signed URL; finds it inside batch records too")  # fmt: skip
    search.add_argument("--since", metavar="TIME", help="epoch seconds or ISO 8601")
    search.add_argument("--until", metavar="TIME", help="epoch seconds or ISO 8601")
    search.add_argument("--limit", type=int, default=100, help="at most this many records (default 100)")
    search.set_defaults(func=run_search)
    verify = cmds.add_parser(
        "verify", parents=[reading],
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
    checkpoint = cmds.add_parser(
        "checkpoint", parents=[reading], help="sign and export a checkpoint now (or keep doing it: --follow)",
        description="Without --follow: one checkpoint now. With --follow: write them at the configured cadence "
        "until stopped, as 'serve' does, for deployments that run 'serve --no-checkpoints' to keep the export "
        "work off the serving processes. Only the holder of the checkpoint lock writes (any number may run).",
    )  # fmt: skip
    checkpoint.add_argument("--follow", action="store_true", help="keep writing checkpoints until SIGINT/SIGTERM")
    checkpoint.set_defaults(func=run_checkpoint)
    prune_cmd = cmds.add_parser(
        "prune", parents=[common],
        help="enforce retention: prune sealed records past retention, purge the raw log (audited)",
        description="Viewer technical data: 90 days (30 after the subject is erased); engineer actions: "
        "6 years; the raw technical log (unmasked IPs): audit.raw_retention_days (7). Only records "
        "covered by a signed checkpoint are pruned; their leaf hashes stay, so verify stays green.",
    )  # fmt: skip
    prune_cmd.add_argument(
        "--now", metavar="TIME", help="evaluate retention at this earlier time (default: now; never in the future)"
    )
    prune_cmd.set_defaults(func=run_prune)
