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
    document = await cli.services.subjects.export(cli.ctx, cli.args.subject, cli.now, cli.args.principal)
    write_private(out, json.dumps(document, indent=2, sort_keys=True, default=str))
    text = f"wrote {len(document['audit_records'])} record(s) about {cli.args.subject} to {cli.args.out}"
    emit({"file": cli.args.out, "records": len(document["audit_records"])}, as_json=cli.json, text=text)
    return 0


async def run_erase(cli: Cli) -> int:
    done = await cli.services.subjects.erase(cli.ctx, cli.args.subject, cli.args.reason, cli.now, cli.args.principal)
    lines = [f"erased viewer {cli.args.subject}: {done['media_deleted']} media item(s) deleted; audit key shredded"]
    if "principal_disabled" in done:
        lines.append(f"and the same person as an engineer: principal {done['principal_disabled']} disabled, "
                     f"{done['grants_revoked']} grant(s) revoked")  # fmt: skip
    emit(done, as_json=cli.json, text=lines)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    subject = sub.add_parser("subject", help="a viewer's data: export or erase")
    scmds = subject.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = scmds.add_parser(
        "export", parents=[common], help="write everything held about a subject to a JSON file (audited)",
    )  # fmt: skip
    export.add_argument("subject", help="the viewer's id at the identity provider (sub claim)")
    export.add_argument("--out", required=True, metavar="FILE", help="created with mode 0600; never overwritten")
    export.add_argument(
        "--principal", metavar="ID", help=_PRINCIPAL_HELP.format(what="include its principal and grants")
    )
    export.set_defaults(func=run_export)
    erase = scmds.add_parser(
        "erase", parents=[common],
        help="delete a viewer's media and shred their audit key (audited)",
        description="Their past audit records stay (the log keeps verifying) but their personal fields "
        "can no longer be read; new URLs for them are refused. A principal of the same name is not touched: "
        "name the person's engineer principal with --principal to disable it too.",
    )  # fmt: skip
    erase.add_argument("subject", help="the viewer's id at the identity provider (sub claim)")
    erase.add_argument("--reason", required=True, help="e.g. the erasure request's ticket")
    erase.add_argument(
        "--principal", metavar="ID", help=_PRINCIPAL_HELP.format(what="disable it and revoke its grants")
    )
    erase.set_defaults(func=run_erase)


# Viewer subjects and principals are different namespaces (a viewer called "web" is not the principal "web").
_PRINCIPAL_HELP = (
    "the same person's engineer principal, named explicitly (viewer subjects and principals are separate "
    "namespaces: without this no principal is touched): {what}"
)
