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


def common_parser(with_json: bool = True) -> argparse.ArgumentParser:
    """Options every data command takes; each parser gets its own copy (actions are shared objects)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="database and keys directory (env GATEWAY_DATA_DIR; default .)")
    common.add_argument("--config", help="TOML config file (env GATEWAY_CONFIG; default DATA_DIR/gateway.toml)")
    common.add_argument("--actor", help="who is acting, for the audit log (env GATEWAY_ACTOR; default cli:$USER)")
    if with_json:
        common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


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
