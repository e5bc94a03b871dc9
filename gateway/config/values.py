"""How one setting's value is read: each parser takes the setting's dotted name (for the message) and the value
as TOML or the environment gave it, and returns it typed and bounded, or raises a ``ConfigError`` naming the
setting. The environment gives text: numbers, booleans and comma-separated lists are read from it too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from gateway import redact
from gateway.errors import ConfigError
from gateway.netaddr import IPNetwork

LOG_LEVELS = ("debug", "info", "warning", "error")
PRINCIPAL_KINDS = ("engineer", "service")
# What tls.require_client_cert may name: the route groups a client certificate can be demanded for
# (gateway.web.clientcert). Page URLs are for browsers, health and key sets for anyone: never demanded.
CLIENT_CERT_ROUTES = ("verify", "api")
# What viewer.algorithms may name: pyjwt's public-key algorithms. Never "none", never HS*: with a
# shared-secret algorithm the IdP's *public* key would become an HMAC secret anyone can sign with.
VIEWER_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA",
)  # fmt: skip


def integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
        return value

    return parse


def seconds(lo: float, hi: float) -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be a number of seconds from {lo} to {hi}, got {value!r}")
        return float(value)

    return parse


def number(lo: float, hi: float, unit: str) -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be {unit} from {lo:g} to {hi:g}, got {value!r}")
        return float(value)

    return parse


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def choice(*options: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    return parse


def strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return tuple(value)


def algorithms(name: str, value: Any) -> tuple[str, ...]:
    algorithms = strings(name, value)
    refused = [a for a in algorithms if a not in VIEWER_ALGORITHMS]
    if refused or not algorithms:
        raise ConfigError(
            f"{name} may only name public-key algorithms ({', '.join(VIEWER_ALGORITHMS)}); "
            f"refused: {', '.join(map(repr, refused)) or 'an empty list'}"
        )
    return algorithms


def client_cert_routes(name: str, value: Any) -> tuple[str, ...]:
    routes = strings(name, value)
    refused = [r for r in routes if r not in CLIENT_CERT_ROUTES]
    if refused:
        raise ConfigError(f"{name} may name {', '.join(CLIENT_CERT_ROUTES)}; refused: {', '.join(map(repr, refused))}")
    return tuple(dict.fromkeys(routes))


def networks(name: str, value: Any) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in strings(name, value))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def boolean(name: str, value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def kinds(name: str, value: Any) -> tuple[str, ...]:
    kinds = strings(name, value)
    refused = [k for k in kinds if k not in PRINCIPAL_KINDS]
    if refused:
        raise ConfigError(f"{name} may name {', '.join(PRINCIPAL_KINDS)}; refused: {', '.join(map(repr, refused))}")
    return kinds


def _head(given: str) -> str:
    """A value that is no URL, cut before anything that could begin a credential or a secret path."""
    head = re.split(r"[/\\:@?#]", given, maxsplit=1)[0]
    return head if head == given else f"{head}/***"


def url(name: str, value: Any) -> str:
    given = text(name, value).rstrip("/")
    if not given.startswith(("https://", "http://")):
        # Not the value itself: a webhook's URL may be its secret (a chat webhook's path).
        shown = redact.without_path(given) if "://" in given else _head(given)
        raise ConfigError(f"{name} must be an http(s) URL, got {shown!r}")
    return given
