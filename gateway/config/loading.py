"""Where settings come from, later wins: built-in defaults, the TOML file, ``GATEWAY_<SECTION>_<KEY>`` environment
variables. An unknown key is refused in the file and in the environment alike (with a guess at the setting meant),
so that a typo never leaves a default silently in force."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.checks import check
from gateway.config.model import Config, ViewerConfig
from gateway.config.settings import ENV_PREFIX, FIELDS, NOT_SETTINGS, dotted, env_name, profiles, webhooks
from gateway.errors import ConfigError

CONFIG_FILE = "gateway.toml"


def load_config(data_dir: Path, config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    path = config_file or data_dir / CONFIG_FILE
    data = _read_toml(path)
    raw = {**_from_file(data, path), **_from_env(environ)}
    top: dict[str, Any] = {}
    viewer: dict[str, Any] = {}
    for (section, key), value in raw.items():
        attr, parse = FIELDS[(section, key)]
        target = viewer if section == "viewer" else top
        target[attr] = parse(dotted(section, key), value)
    config = Config(
        data_dir=data_dir, viewer=ViewerConfig(**viewer), profiles=profiles(data), webhooks=webhooks(data), **top
    )
    check(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _from_file(data: dict[str, Any], path: Path) -> dict[tuple[str, str], Any]:
    values: dict[tuple[str, str], Any] = {}
    for name, value in data.items():
        if name == "profiles":
            continue
        if isinstance(value, dict):
            # [webhooks.NAME] endpoint tables are read by settings.webhooks
            values.update({(name, k): v for k, v in value.items() if not (name == "webhooks" and isinstance(v, dict))})
        else:
            values[("", name)] = value
    unknown = sorted(dotted(*k) for k in values if k not in FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return values


def _from_env(environ: Mapping[str, str]) -> dict[tuple[str, str], Any]:
    known = {env_name(*k): k for k in FIELDS}
    unknown = sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known and n not in NOT_SETTINGS)
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(_guess(n, known) for n in unknown)}")
    return {known[name]: value for name, value in environ.items() if name in known}


def _guess(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, [*known, *NOT_SETTINGS], n=1, cutoff=0.8)
    return f"{name} (did you mean {close[0]}?)" if close else name
