"""Entry point of ``gatewayctl``: parse, run one command, map errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from gateway.cli import audit, grants, incident, keys, media, offline, principals, setup, subject
from gateway.cli.context import common_parser, open_cli
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

_EXIT_CODES: list[tuple[type[GatewayError], int]] = [
    (InvalidInput, EXIT_USAGE),
    (NotFound, EXIT_NOT_FOUND),
    (Conflict, EXIT_CONFLICT),
    (Forbidden, EXIT_DENIED),
    (Unauthenticated, EXIT_DENIED),
    (Unavailable, EXIT_UNAVAILABLE),
    (ConfigError, EXIT_CONFIG),
]

_EPILOG = """exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 not found, 4 conflict,
5 denied, 69 store or audit unavailable, 78 configuration error"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatewayctl",
        description="Administer the signed-URL media gateway: keys, principals, grants, media, audit.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_parser()
    for module in (setup, principals, keys, grants, media, audit, incident, subject, offline):
        module.register(sub, common)
    return parser


async def _run(args: argparse.Namespace) -> int:
    if args.func is setup.run_init or args.func is setup.run_token:
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
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "sync", False):
            return int(args.func(args))
        return asyncio.run(_run(args))
    except GatewayError as exc:
        print(f"gatewayctl: {exc.message}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
