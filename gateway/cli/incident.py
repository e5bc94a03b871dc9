"""gatewayctl incident report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.audit.forensics import incident_report
from gateway.cli.context import Cli, common_parser
from gateway.cli.output import print_lines, when, write_private
from gateway.cli.timeparse import instant


def _lines(report: dict) -> list[str]:  # type: ignore[type-arg]
    lines = [
        f"key {report['kid']}: {len(report['issuances'])} issuance(s), {len(report['redemptions'])} redemption(s)",
        f"first use {when(report['first_use'])}, last use {when(report['last_use'])}",
        "",
        "issuances:",
    ]
    for u in report["issuances"]:
        lines.append(f"  #{u['seq']} {when(u['time'])} {u['media_id']}/{u['rendition']} from {u['network'] or '?'}"
                     f" ua={u['user_agent'] or '?'}")  # fmt: skip
    lines.append("redemptions:")
    lines += [f"  #{u['seq']} {when(u['time'])} from {u['network'] or '?'}" for u in report["redemptions"]]
    lines.append("redemptions from a network the URL was not issued to (likely outsider use):")
    lines += [f"  #{u['seq']} {when(u['time'])} from {u['network']}" for u in report["outsider_redemptions"]] or [
        "  none"
    ]
    lines.append("affected subjects (owners of media signed under this key):")
    lines += [f"  {s}" for s in report["affected_subjects"]] or ["  none"]
    if report["media_with_unknown_owner"]:
        lines.append(f"media whose owner is no longer known: {', '.join(report['media_with_unknown_owner'])}")
    return lines


async def run_report(cli: Cli) -> int:
    since = instant(cli.args.since) if cli.args.since else None
    report = await incident_report(cli.services.store, cli.services.audit_log, cli.args.kid, since)
    if cli.args.json_out == "-":
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if cli.args.json_out:
        # It names the people to notify: owner-only, like every file of personal data the CLI writes.
        write_private(Path(cli.args.json_out), json.dumps(report, indent=2, sort_keys=True))
    print_lines(_lines(report))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    incident = sub.add_parser("incident", help="compromise forensics")
    icmds = incident.add_subparsers(dest="action", required=True, metavar="ACTION")
    report = icmds.add_parser(
        "report", parents=[common_parser(with_json=False)],
        help="what a key signed, where its URLs were used from, and who is affected",
        description="Every issuance under the key (time, media, rendition, masked issuing network, user "
        "agent), every redemption seen at the verifier, the redemptions from a network the URL was not "
        "issued to, first and last use, and the subjects to notify.",
    )  # fmt: skip
    report.add_argument("--kid", required=True, help="the suspect key id (gwk_…)")
    report.add_argument("--since", metavar="TIME", help="epoch seconds or ISO 8601")
    report.add_argument("--json", dest="json_out", nargs="?", const="-", metavar="FILE",
                        help="write the report as JSON to FILE (new, mode 0600) or to stdout with no FILE")  # fmt: skip
    report.set_defaults(func=run_report)
