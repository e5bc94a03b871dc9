"""gatewayctl master-key status|rewrap: where the sealed secrets are, and moving them to another master key."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.context import Cli, common_parser
from gateway.cli.output import emit
from gateway.keys.masters import BACKENDS
from gateway.keys.rewrap import Census, Rewrap, census
from gateway.keys.sealing import LEGACY, MasterKey


async def run_status(cli: Cli) -> int:
    sealing = cli.services.master_key.key_id
    found = await census(cli.services.store)
    data = {
        "backend": cli.config.master_key_backend,
        "sealing": sealing,
        **found.to_json(),
        "not_under_sealing": found.outside(sealing),
    }
    lines = [f"new secrets are sealed by {sealing} (master_key.backend = {cli.config.master_key_backend})"]
    lines += [_held_by(found, master) for master in sorted(found.masters())]
    emit(data, as_json=cli.json, text=lines)
    return 0


def _held_by(found: Census, master: str) -> str:
    pepper = ", the audit pepper" if found.pepper == master else ""
    keys, subjects = found.signing_keys[master], found.subject_keys[master]
    name = "local (envelopes written before key ids; rewrap --to local updates them)" if master == LEGACY else master
    return f"  {name}: {keys} signing keys, {subjects} subject keys{pepper}"


async def _target(cli: Cli, backend: str) -> MasterKey:
    sources = cli.services.master_key.sources
    return sources.local() if backend == "local" else await sources.kms(create=True)


async def run_rewrap(cli: Cli) -> int:
    services = cli.services
    target = await _target(cli, cli.args.to)
    services.master_key.adopt(target)
    moved = await Rewrap(services.store, services.audit_log, services.master_key, target).run(cli.ctx, cli.now)
    left = (await census(services.store)).outside(target.key_id)
    data: dict[str, Any] = {
        "to": target.key_id,
        "signing_keys": moved.signing_keys,
        "subject_keys": moved.subject_keys,
        "pepper": moved.pepper,
        "from": dict(moved.sources),
        "not_under_target": left,
    }
    lines = [
        f"re-sealed under {target.key_id}: {moved.signing_keys} signing keys, {moved.subject_keys} subject keys"
        + (", the audit pepper" if moved.pepper else ""),
        f"{left} secrets are sealed under another master (sealed meanwhile by a process: run rewrap again)"
        if left
        else "every sealed secret is under it",
    ]
    if cli.args.to != cli.config.master_key_backend:
        lines.append(f"note: master_key.backend is {cli.config.master_key_backend}: new secrets are sealed under it")
    emit(data, as_json=cli.json, text=lines)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = common_parser(actor=False)  # commands that change nothing: no --actor
    group = sub.add_parser("master-key", help="the master key that seals signing keys and audit keys: status, rewrap")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = cmds.add_parser(
        "status", parents=[reading], help="which master seals new secrets, and how many secrets each master holds",
    )  # fmt: skip
    status.set_defaults(func=run_status)
    rewrap = cmds.add_parser(
        "rewrap", parents=[common],
        help="re-seal every secret under one master key (local file or AWS KMS), while the gateway runs",
        description="Opens every sealed secret (signing keys, viewers' subject keys, the audit pepper) with the "
        "master that sealed it and seals it under --to, in short audited batches (master_key:rewrapped). "
        "Running gateways open old and new alike. '--to kms' makes the KMS data key (GenerateDataKey under "
        "master_key.kms_key_id) if there is none yet. See docs/aws.md for the order of steps with replicas.",
    )  # fmt: skip
    rewrap.add_argument("--to", required=True, choices=BACKENDS, help="the master key to seal everything under")
    rewrap.set_defaults(func=run_rewrap)
