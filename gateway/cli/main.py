"""Entry point of ``gatewayctl``: parse, run one command, map errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from gateway import redact
from gateway.cli import (
    audit,
    completion,
    credentials,
    doctor,
    explain,
    grants,
    health,
    incident,
    keys,
    master_key,
    media,
    offline,
    principals,
    serve,
    setup,
    subject,
    webhooks,
)
from gateway.cli.context import add_global_options, common_parser, open_cli, settle
from gateway.cli.output import printable
from gateway.cli.parser import Parser
from gateway.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    GatewayError,
    InvalidInput,
    NotFound,
    Unauthenticated,
    Unavailable,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_DENIED = 5
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78
# The reader of our output went away (``gatewayctl audit tail | head``): what a shell reports for a
# program killed by SIGPIPE (128 + 13), so `set -o pipefail` scripts see it as they do for any tool.
EXIT_BROKEN_PIPE = 141

_EXIT_CODES: list[tuple[type[GatewayError], int]] = [
    (InvalidInput, EXIT_USAGE),
    (NotFound, EXIT_NOT_FOUND),
    (Conflict, EXIT_CONFLICT),
    (Forbidden, EXIT_DENIED),
    (Unauthenticated, EXIT_DENIED),
    (Unavailable, EXIT_UNAVAILABLE),
    (ConfigError, EXIT_CONFIG),
]

EXIT_CODE_HELP = """exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 not found, 4 conflict,
5 denied, 69 store or audit unavailable, 78 configuration error, 141 output pipe closed"""


def version() -> str:
    try:
        return metadata.version("media-gateway")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gatewayctl",
        description="Administer the signed-URL media gateway: keys, principals, grants, media, audit.",
        epilog=EXIT_CODE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gatewayctl {version()}")
    add_global_options(parser.add_argument_group("global options (before or after the command)"))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_parser()
    administration = (setup, serve, principals, credentials, keys, master_key, grants, media, audit, incident, subject)
    for module in (*administration, explain, webhooks, doctor, health, offline, completion):
        module.register(sub, common)
    return parser


async def _run(args: argparse.Namespace) -> int:
    if args.func in (setup.run_init, setup.run_token, setup.run_migrate):
        return int(await args.func(args))
    cli = await open_cli(args)
    try:
        return int(await args.func(cli))
    finally:
        await cli.services.close()


def exit_code(error: GatewayError) -> int:
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = settle(build_parser().parse_args(argv))
    # Anything this process creates is owner-only, even a file no code path below thought of.
    # (Not what keeps the database private: see gateway.store.files and gateway.store.sqlite.)
    umask = os.umask(0o077)
    try:
        return _dispatch(args)
    finally:
        os.umask(umask)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        code = int(args.func(args)) if getattr(args, "sync", False) else asyncio.run(_run(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except GatewayError as exc:
        print(f"gatewayctl: {printable(redact.text(exc.message))}", file=sys.stderr)
        return exit_code(exc)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing what is still buffered at exit cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
