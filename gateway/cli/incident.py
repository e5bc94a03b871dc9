"""gatewayctl incident report | notify."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gateway.alerts.incidents import record_incident
from gateway.alerts.outbox import Attempt, Outbox
from gateway.alerts.webhooks import event_id
from gateway.audit.forensics import incident_report
from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit, print_lines, when, write_private
from gateway.cli.timeparse import instant
from gateway.errors import ConfigError

_ROUNDS = 5


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
    services = cli.services
    report = await incident_report(services.store, services.audit_log, cli.args.kid, since)
    # Who looked at whose data is itself audited; with webhooks, the report's summary goes out (incident.reported).
    await record_incident(services.store, services.audit_log, services.outbox, cli.ctx, report, cli.now)
    if cli.args.json_out == "-":
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if cli.args.json_out:
        # It names the people to notify: owner-only, like every file of personal data the CLI writes.
        write_private(Path(cli.args.json_out), json.dumps(report, indent=2, sort_keys=True))
    print_lines(_lines(report))
    return 0


async def run_notify(cli: Cli) -> int:
    """Send the "affected users" notification for a compromised key through the webhooks, and deliver it now."""
    services = cli.services
    if not services.outbox.enabled:
        raise ConfigError("no webhook endpoint is configured ([webhooks.NAME]): nobody to notify")
    since = instant(cli.args.since) if cli.args.since else None
    report = await incident_report(services.store, services.audit_log, cli.args.kid, since)
    seq, queued = await record_incident(
        services.store, services.audit_log, services.outbox, cli.ctx, report, cli.now, cli.args.message
    )
    if not queued:
        raise ConfigError("no webhook endpoint receives incident.notify (webhooks.NAME.events)")
    event = event_id(seq)
    lines = [f"incident notification {event} for {cli.args.kid}: {len(report['affected_subjects'])} affected "
             f"subject(s), queued for {queued} endpoint(s)"]  # fmt: skip
    attempts = [] if cli.args.queue_only else await _deliver(services.outbox, event)
    lines += [f"  {a.entry.endpoint}: " + ("delivered" if a.ok else f"failed ({a.error}); retried with backoff "
              "by the serving gateway ('gatewayctl webhooks list')") for a in attempts]  # fmt: skip
    emit({"event_id": event, "queued": queued, "affected_subjects": len(report["affected_subjects"]),
          "delivered": [a.entry.endpoint for a in attempts if a.ok]}, as_json=cli.json, text=lines)  # fmt: skip
    return 0


async def _deliver(outbox: Outbox, event: str) -> list[Attempt]:
    """Attempt the due deliveries until this event's have been tried (a few rounds at most)."""
    mine: list[Attempt] = []
    for _ in range(_ROUNDS):
        attempts = await outbox.deliver_due(time.time())
        mine += [a for a in attempts if a.entry.event_id == event]
        if not attempts:
            break
    return mine


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
    notify = icmds.add_parser(
        "notify", parents=[common],
        help="send the affected-users notification for a compromised key through the webhooks",
        description="Builds the incident report for the key and sends an incident.notify webhook naming the "
        "affected subjects by pseudonym (the receiver resolves them with POST /v1/subjects/resolve). The "
        "event is queued durably and attempted at once; a failed attempt is retried with backoff by the "
        "serving gateway. Audited as incident:notified.",
    )  # fmt: skip
    notify.add_argument("--kid", required=True, help="the compromised key id (gwk_…)")
    notify.add_argument("--since", metavar="TIME", help="only uses since then: epoch seconds or ISO 8601")
    notify.add_argument("--message", help="text for the receiver to pass on to the affected users")
    notify.add_argument("--queue-only", action="store_true",
                        help="only queue it: the serving gateway delivers it within a second")  # fmt: skip
    notify.set_defaults(func=run_notify)
