"""gatewayctl webhooks list | retry | deliver: the outbox, as an operator sees it."""

from __future__ import annotations

import argparse
import time

from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit, table, when
from gateway.errors import Conflict, InvalidInput

_STATES = ("pending", "delivered", "dead")


async def run_list(cli: Cli) -> int:
    if cli.args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    entries = await cli.services.store.outbox.entries(cli.args.state, cli.args.limit)
    rows = [
        {"id": e.id, "endpoint": e.endpoint, "event_id": e.event_id, "event": e.event, "state": e.state,
         "attempts": e.attempts, "next_attempt": when(e.next_attempt_at) if e.state == "pending" else "",
         "last_error": e.last_error or ""}
        for e in entries
    ]  # fmt: skip
    columns = ["id", "endpoint", "event_id", "event", "state", "attempts", "next_attempt", "last_error"]
    emit(rows, as_json=cli.json, text=table(rows, columns) if rows else ["no deliveries"])
    return 0


async def run_retry(cli: Cli) -> int:
    async with cli.services.store.transaction() as tx:
        revived = await tx.outbox.revive(cli.args.id, cli.now)
    if not revived:
        raise Conflict(f"delivery {cli.args.id} is not dead (gatewayctl webhooks list --state dead)")
    emit({"id": cli.args.id, "state": "pending"}, as_json=cli.json, text=f"delivery {cli.args.id} is due again")
    return 0


async def run_deliver(cli: Cli) -> int:
    outbox = cli.services.outbox
    queued = await outbox.feed(time.time())
    attempts = await outbox.deliver_due(time.time())
    lines = [f"queued {queued} event(s); attempted {len(attempts)} delivery(ies)"]
    lines += [f"  {a.entry.event_id} -> {a.entry.endpoint}: {'delivered' if a.ok else a.error}" for a in attempts]
    data = {"queued": queued, "attempts": [{"event_id": a.entry.event_id, "endpoint": a.entry.endpoint,
                                            "ok": a.ok, "error": a.error} for a in attempts]}  # fmt: skip
    emit(data, as_json=cli.json, text=lines)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    webhooks = sub.add_parser("webhooks", help="the webhook outbox: deliveries, retries")
    cmds = webhooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = cmds.add_parser(
        "list", parents=[reading], help="deliveries, newest first",
        description="Each event queued for each endpoint: its state (pending, delivered, dead), attempts, "
        "when it is next tried and the last error.",
    )  # fmt: skip
    listing.add_argument("--state", choices=_STATES, help="only deliveries in this state")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(func=run_list)
    retry = cmds.add_parser(
        "retry", parents=[reading], help="make a dead delivery due again (after fixing the receiver)",
        description="A delivery that used up webhooks.max_attempts is dead; this makes it pending and due "
        "now, with its attempts counted again from zero. A delivery that is not dead is a conflict (exit 4).",
    )  # fmt: skip
    retry.add_argument("id", type=int, help="the delivery id (gatewayctl webhooks list)")
    retry.set_defaults(func=run_retry)
    deliver = cmds.add_parser(
        "deliver", parents=[reading], help="queue new events and attempt the due deliveries once, now",
        description="What a serving gateway does every second, once: turn new audit records into events and "
        "attempt every due delivery. For deployments where no gateway is serving.",
    )  # fmt: skip
    deliver.set_defaults(func=run_deliver)
