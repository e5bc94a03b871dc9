"""gatewayctl subject export|erase: a viewer's rights over what the gateway holds about them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.cli.context import Cli
from gateway.cli.output import emit, write_private
from gateway.errors import Conflict


async def run_export(cli: Cli) -> int:
    out = Path(cli.args.out)
    if out.exists():  # before the export is audited as done
        raise Conflict(f"{out} already exists; choose a new file (it is never overwritten)")
    document = await cli.services.subjects.export(cli.ctx, cli.args.subject, cli.now)
    write_private(out, json.dumps(document, indent=2, sort_keys=True, default=str))
    text = f"wrote {len(document['audit_records'])} record(s) about {cli.args.subject} to {cli.args.out}"
    emit({"file": cli.args.out, "records": len(document["audit_records"])}, as_json=cli.json, text=text)
    return 0


async def run_erase(cli: Cli) -> int:
    counts = await cli.services.subjects.erase(cli.ctx, cli.args.subject, cli.args.reason, cli.now)
    text = (f"erased {cli.args.subject}: {counts['media_deleted']} media item(s) deleted, "
            f"{counts['grants_revoked']} grant(s) revoked; audit key shredded")  # fmt: skip
    emit(counts, as_json=cli.json, text=text)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    subject = sub.add_parser("subject", help="a viewer's data: export or erase")
    scmds = subject.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = scmds.add_parser(
        "export", parents=[common], help="write everything held about a subject to a JSON file (audited)",
    )  # fmt: skip
    export.add_argument("subject", help="the viewer's id at the identity provider (sub claim)")
    export.add_argument("--out", required=True, metavar="FILE", help="created with mode 0600; never overwritten")
    export.set_defaults(func=run_export)
    erase = scmds.add_parser(
        "erase", parents=[common],
        help="delete a subject's media, revoke their access and shred their audit key (audited)",
        description="Their past audit records stay (the log keeps verifying) but their personal fields "
        "can no longer be read; new URLs for them are refused.",
    )  # fmt: skip
    erase.add_argument("subject", help="the viewer's id at the identity provider (sub claim)")
    erase.add_argument("--reason", required=True, help="e.g. the erasure request's ticket")
    erase.set_defaults(func=run_erase)
