"""What every command gets: the loaded config, opened services, the actor and the time."""

from __future__ import annotations

import argparse
import getpass
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.records import RequestContext
from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.services import Services, open_services

GLOBAL_OPTIONS = ("data_dir", "config", "actor")


def common_parser(with_json: bool = True, actor: bool = True) -> argparse.ArgumentParser:
    """Options every data command takes; each parser gets its own copy (actions are shared objects).

    ``actor=False`` for commands that change nothing (no audit record names who ran them). The global
    options are also accepted before the command (``add_global_options``): their default is SUPPRESS
    here, so a value given before the command is not overwritten by the command's default; ``settle``
    fills in what neither place gave."""
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, actor=actor)
    if with_json:
        common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def add_global_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, actor: bool = True) -> None:
    hidden = argparse.SUPPRESS
    parser.add_argument(
        "--data-dir", default=hidden, help="database and keys directory (env GATEWAY_DATA_DIR; default .)"
    )
    parser.add_argument(
        "--config", default=hidden, help="TOML config file (env GATEWAY_CONFIG; default DATA_DIR/gateway.toml)"
    )
    if actor:
        parser.add_argument(
            "--actor", default=hidden, help="who is acting, for the audit log (env GATEWAY_ACTOR; default cli:$USER)"
        )


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """The global options neither before nor after the command gave: None (the environment, then the default)."""
    for name in GLOBAL_OPTIONS:
        if not hasattr(args, name):
            setattr(args, name, None)
    return args


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("GATEWAY_DATA_DIR") or ".").resolve()


def config_file(args: argparse.Namespace) -> Path | None:
    value = args.config or os.environ.get("GATEWAY_CONFIG")
    return Path(value) if value else None


def load(args: argparse.Namespace, *, creating: bool = False) -> Config:
    """The config. A file named by --config or GATEWAY_CONFIG must exist (only ``init``, ``creating``
    it, may name a new one): a mistyped name must not quietly run on the defaults. The default
    file, DATA_DIR/gateway.toml, may be absent."""
    path = config_file(args)
    if path is not None and not creating and not path.is_file():
        source = "--config" if args.config else "GATEWAY_CONFIG"
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"config file {path} ({source}) {what}")
    return load_config(data_dir(args), path)


def actor(args: argparse.Namespace) -> str:
    """Who is acting, for the audit log: --actor, GATEWAY_ACTOR, or the OS user."""
    if args.actor:
        return str(args.actor)
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    return os.environ.get("GATEWAY_ACTOR") or f"cli:{user}"


@dataclass
class Cli:
    args: argparse.Namespace
    config: Config
    services: Services
    now: float

    @property
    def ctx(self) -> RequestContext:
        return RequestContext(actor=actor(self.args), user_agent="gatewayctl")

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))


async def open_cli(args: argparse.Namespace) -> Cli:
    config = load(args)
    services = await open_services(config)
    return Cli(args, config, services, time.time())
