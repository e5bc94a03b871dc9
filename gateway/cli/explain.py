"""gatewayctl explain URL: why /v1/verify would refuse this signed URL now, against the live state and audit log.

The same inquiry as ``POST /v1/explain`` (``gateway.explain``), run by an
operator on the gateway's host. Exit status: 0 accepted, 1 refused.
"""

from __future__ import annotations

import argparse
import dataclasses

from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit
from gateway.cli.timeparse import instant_argument
from gateway.explain.inquiry import Inquiry

EXIT_REFUSED = 1


async def run_explain(cli: Cli) -> int:
    args = cli.args
    now = cli.now if args.now is None else args.now
    found = await Inquiry(cli.services).explain(args.url, profile=args.profile, client_ip=args.ip, now=now)
    head = f"{found.verdict} ({found.reason}, profile {found.profile}): {found.summary}"
    emit(dataclasses.asdict(found), as_json=cli.json, text=[head, *(f"  {line}" for line in found.details)])
    return 0 if found.verdict == "accepted" else EXIT_REFUSED


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # records nothing: no --actor
    explain = sub.add_parser(
        "explain", parents=[reading], help="say why /v1/verify would refuse a signed URL now (or that it would not)",
        description="Checks a signed URL exactly as /v1/verify would now (nothing is recorded or remembered) and "
        "explains the answer from the live state and the audit log: expired by how much, which key was revoked "
        "when, by whom and why, a disabled principal, revoked links or grant, the prefix the token covers, the "
        "canonical-path rule the path breaks, the string that was signed, the wrong profile.",
        epilog="exit status: 0 accepted, 1 refused (the reason is printed)",
    )  # fmt: skip
    explain.add_argument("url", help="the URL as the viewer presented it (absolute, or the path and query)")
    explain.add_argument(
        "--profile", help="the profile to verify with (default: the one whose base URL it is on, else verify's)"
    )
    explain.add_argument("--ip", metavar="ADDRESS", help="the client address the request came from (IP-bound URLs)")
    explain.add_argument(
        "--now",
        type=instant_argument,
        metavar="TIME",
        help="judge the times as at this moment, epoch seconds or ISO 8601 (default: now), the state as now",
    )
    explain.set_defaults(func=run_explain)
