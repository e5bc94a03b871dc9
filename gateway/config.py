"""Configuration: one frozen, typed object built once at start-up.

Sources, later wins: built-in defaults, the TOML file, ``GATEWAY_<SECTION>_<KEY>``
environment variables (``GATEWAY_SERVER_PORT=9000``; lists comma-separated).
Every problem is a ``ConfigError`` naming the offending key. An unknown key is
one too, in the file and in the environment alike: a ``GATEWAY_`` variable that
is no setting (a typo: ``SERVER_PROT`` for ``SERVER_PORT``) stops start-up,
unless it is one of the few named in ``NOT_SETTINGS``.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import redact
from gateway.errors import ConfigError
from gateway.netaddr import IPNetwork

DEV_IDP_ISSUER = "urn:gateway:dev-idp"
ENV_PREFIX = "GATEWAY_"
# GATEWAY_ variables that are not settings, and so not refused as unknown ones: gatewayctl's global
# options, and what the test suite, benchmarks, tools and the demo read (grep GATEWAY_: tests/test_config.py
# keeps this list complete).
NOT_SETTINGS = frozenset({
    "GATEWAY_DATA_DIR", "GATEWAY_CONFIG", "GATEWAY_ACTOR",  # gatewayctl --data-dir, --config, --actor
    "GATEWAY_REQUIRE_SERVICES",  # tests: a missing service fails instead of skipping (CI)
    "GATEWAY_TEST_POSTGRES",  # tests: the PostgreSQL server to create test databases on
    "GATEWAY_FUZZ_EXAMPLES", "GATEWAY_FUZZ_REPORT",  # tests: the fuzz budget and its report file
    "GATEWAY_DEMO_SCREENSHOT",  # tests: where the browser test writes the README's picture
})  # fmt: skip
CONFIG_FILE = "gateway.toml"
# Who may scrape /metrics when metrics.allow is not set: this host only.
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
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


@dataclass(frozen=True)
class ViewerConfig:
    issuer: str = ""
    audience: str = ""
    jwks_url: str = ""
    public_key_file: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    workspaces_claim: str = "workspaces"
    cookie: str = "gw_viewer"


@dataclass(frozen=True)
class ProfileConfig:
    """A CDN the gateway signs for: its dialect, base URL, shared secret and options."""

    name: str
    dialect: str
    base_url: str
    secret_file: str = ""
    options: tuple[tuple[str, str], ...] = ()
    # The operator accepts that this profile's URLs cannot name the principal: /v1/verify refuses them.
    unattributable: bool = False


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where alert and change events are delivered (``gateway.alerts``): a URL, its signing secret, the events."""

    name: str
    url: str = field(repr=False)  # may carry a password
    secret_file: str
    # Events this endpoint receives (webhook names, e.g. "key.revoked"); empty: every event.
    events: tuple[str, ...] = ()
    # During a secret rotation: a second secret, signed with too (a second v1= in the signature header).
    previous_secret_file: str = ""


@dataclass(frozen=True)
class Config:
    data_dir: Path
    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = field(default="", repr=False)  # may carry a password: shown through gateway.redact.url
    cdn_base_url: str = "https://cdn.example.com"
    default_ttl: int = 300
    max_ttl: int = 3600
    # [signing] cache_window: requests in one window of this many seconds get the byte-identical URL (0: off).
    cache_window: int = 60
    api_audience: str = "media-gateway"
    max_token_lifetime: int = 3600
    pages_principal: str = "pages"
    # [pages] scope and form: what a page URL redirects to (gateway.web.pages): the rendition's file ("path"), or
    # its item's own directory ("prefix"), as a query token ("query") or a path token ("path": /_t/<token>/…).
    pages_scope: str = "path"
    pages_form: str = "query"
    trusted_proxies: tuple[IPNetwork, ...] = ()
    batch_max_items: int = 100
    default_profile: str = "native"
    # [verify] profiles: the profiles /v1/verify may use; the first is used when the proxy names none.
    verify_profiles: tuple[str, ...] = ()
    # [state]: the in-memory view each process serves from (docs/replicas.md).
    state_stale_after: float = 2.0
    state_poll_every: float = 0.0  # 0: the store's default (500 ms SQLite, 50 ms PostgreSQL)
    state_media_cache: int = 10_000
    checkpoint_every_records: int = 1000
    checkpoint_every_seconds: int = 300
    audit_export_dir: str = "audit-export"
    audit_s3_bucket: str = ""
    audit_s3_prefix: str = "audit/"
    audit_s3_endpoint_url: str = ""
    audit_s3_region: str = "us-east-1"
    raw_retention_days: int = 7
    # [master_key]: which master seals new secrets; whichever sealed one still opens it (gateway.keys.masters).
    master_key_backend: str = "local"
    kms_key_id: str = ""
    kms_region: str = "us-east-1"
    kms_endpoint_url: str = ""
    # [cloudfront]: the key group 'gatewayctl keys publish-cloudfront' adds keys to (gateway.cdn.cloudfront_keys).
    cloudfront_key_group_id: str = ""
    cloudfront_endpoint_url: str = ""
    # [tls]: HTTPS on the gateway's own listener and client certificates from the proxy (gateway.web.tls).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    tls_require_client_cert: tuple[str, ...] = ()
    # [server] shutdown_timeout: how long SIGTERM waits for requests in flight (gateway.cli.serve).
    shutdown_timeout: float = 30.0
    # [server] bounds on connections (gateway.web.connections): a request's headers must be complete within
    # header_timeout of its first byte, its body within body_timeout; an idle keep-alive connection closes after
    # keepalive_timeout; one whose peer reads nothing of its answers for send_timeout is aborted; max_connections
    # open at once per process (0: what ulimit -n leaves after a reserve).
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    max_connections: int = 0
    # [metrics]: GET /metrics (gateway.observe); allowed peers and an optional bearer token.
    metrics_enabled: bool = True
    metrics_allow: tuple[IPNetwork, ...] = _LOOPBACK
    metrics_token_file: str = ""
    # [edge]: the state feed and redemption reports for nginx verifying native URLs itself (docs/edge.md).
    edge_token_file: str = ""
    edge_mtls: bool = False
    edge_client_names: tuple[str, ...] = ()
    edge_hmac_secrets: bool = False
    edge_max_wait: float = 5.0
    # [logging]: one JSON object per line on stderr (gateway.observe.logs).
    log_format: str = "json"
    log_level: str = "warning"
    access_log: bool = False
    # [limits]: token buckets on issuance and page redirects (gateway.limits); a rate of 0 turns one off.
    limit_principal_rate: float = 0.0
    limit_principal_burst: int = 0
    limit_key_rate: float = 0.0
    limit_key_burst: int = 0
    limit_redirect_rate: float = 0.0
    limit_redirect_burst: int = 0
    limit_sync_every: float = 1.0
    # [alerts]: suspicious use, detected as it happens (gateway.alerts.detect).
    alert_outsider_use: bool = True
    alert_outsider_skip: tuple[str, ...] = ()
    alert_unusual_kinds: tuple[str, ...] = ("engineer",)
    alert_learning_days: float = 7.0
    alert_rate_factor: float = 10.0
    alert_rate_floor: int = 60
    alert_cooldown: int = 3600
    # [webhooks]: delivery of events to [webhooks.NAME] endpoints (gateway.alerts.outbox).
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 12
    webhook_backoff: float = 2.0
    webhooks: tuple[WebhookEndpoint, ...] = ()
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    profiles: tuple[ProfileConfig, ...] = ()

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def master_key_path(self) -> Path:
        return self.keys_dir / "master.key"

    @property
    def log_signing_key_path(self) -> Path:
        return self.keys_dir / "log-signing.key"

    @property
    def export_dir(self) -> Path | None:
        if not self.audit_export_dir:
            return None
        path = Path(self.audit_export_dir)
        return path if path.is_absolute() else self.data_dir / path

    @property
    def dev_idp_key_path(self) -> Path:
        return self.keys_dir / "dev-idp.key"

    @property
    def sqlite_path(self) -> Path:
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return self.data_dir / "gateway.db"

    def data_path(self, value: str) -> Path:
        """A configured file: relative to the data directory unless absolute."""
        path = Path(value)
        return path if path.is_absolute() else self.data_dir / path

    @property
    def production(self) -> bool:
        return self.environment == "production"


def _int(lo: int, hi: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
        return value

    return parse


def _seconds(lo: float, hi: float) -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be a number of seconds from {lo} to {hi}, got {value!r}")
        return float(value)

    return parse


def _number(lo: float, hi: float, unit: str) -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be {unit} from {lo:g} to {hi:g}, got {value!r}")
        return float(value)

    return parse


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _choice(*options: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    return parse


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return tuple(value)


def _algorithms(name: str, value: Any) -> tuple[str, ...]:
    algorithms = _strings(name, value)
    refused = [a for a in algorithms if a not in VIEWER_ALGORITHMS]
    if refused or not algorithms:
        raise ConfigError(
            f"{name} may only name public-key algorithms ({', '.join(VIEWER_ALGORITHMS)}); "
            f"refused: {', '.join(map(repr, refused)) or 'an empty list'}"
        )
    return algorithms


def _client_cert_routes(name: str, value: Any) -> tuple[str, ...]:
    routes = _strings(name, value)
    refused = [r for r in routes if r not in CLIENT_CERT_ROUTES]
    if refused:
        raise ConfigError(f"{name} may name {', '.join(CLIENT_CERT_ROUTES)}; refused: {', '.join(map(repr, refused))}")
    return tuple(dict.fromkeys(routes))


def _networks(name: str, value: Any) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in _strings(name, value))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def _kinds(name: str, value: Any) -> tuple[str, ...]:
    kinds = _strings(name, value)
    refused = [k for k in kinds if k not in PRINCIPAL_KINDS]
    if refused:
        raise ConfigError(f"{name} may name {', '.join(PRINCIPAL_KINDS)}; refused: {', '.join(map(repr, refused))}")
    return kinds


def _url(name: str, value: Any) -> str:
    text = _text(name, value).rstrip("/")
    if not text.startswith(("https://", "http://")):
        # Not the value itself: a webhook's URL may be its secret (a chat webhook's path).
        shown = redact.without_path(text) if "://" in text else text.split("/", 1)[0] + ("/***" if "/" in text else "")
        raise ConfigError(f"{name} must be an http(s) URL, got {shown!r}")
    return text


# (section, key) in the file -> (field on Config or ViewerConfig, parser)
_FIELDS: dict[tuple[str, str], tuple[str, Callable[[str, Any], Any]]] = {
    ("", "environment"): ("environment", _choice("development", "production")),
    ("server", "host"): ("host", _text),
    ("server", "port"): ("port", _int(0, 65535)),
    ("server", "shutdown_timeout"): ("shutdown_timeout", _seconds(0.0, 3600.0)),
    ("server", "header_timeout"): ("header_timeout", _seconds(0.1, 300.0)),
    ("server", "body_timeout"): ("body_timeout", _seconds(0.1, 3600.0)),
    ("server", "send_timeout"): ("send_timeout", _seconds(0.1, 3600.0)),
    ("server", "keepalive_timeout"): ("keepalive_timeout", _seconds(0.1, 3600.0)),
    ("server", "max_connections"): ("max_connections", _int(0, 10_000_000)),
    ("database", "url"): ("database_url", _text),
    ("signing", "cdn_base_url"): ("cdn_base_url", _url),
    ("signing", "default_ttl"): ("default_ttl", _int(1, 7 * 86400)),
    ("signing", "max_ttl"): ("max_ttl", _int(1, 7 * 86400)),
    ("signing", "cache_window"): ("cache_window", _int(0, 3600)),
    ("signing", "batch_max_items"): ("batch_max_items", _int(1, 1000)),
    ("signing", "profile"): ("default_profile", _text),
    ("verify", "profiles"): ("verify_profiles", _strings),
    ("state", "stale_after"): ("state_stale_after", _seconds(0.1, 60.0)),
    ("state", "poll_every"): ("state_poll_every", _seconds(0.0, 10.0)),
    ("state", "media_cache"): ("state_media_cache", _int(100, 10_000_000)),
    ("audit", "checkpoint_every_records"): ("checkpoint_every_records", _int(1, 10_000_000)),
    ("audit", "checkpoint_every_seconds"): ("checkpoint_every_seconds", _int(1, 86400)),
    ("audit", "export_dir"): ("audit_export_dir", _text),
    ("audit", "s3_bucket"): ("audit_s3_bucket", _text),
    ("audit", "s3_prefix"): ("audit_s3_prefix", _text),
    ("audit", "s3_endpoint_url"): ("audit_s3_endpoint_url", _text),
    ("audit", "s3_region"): ("audit_s3_region", _text),
    ("audit", "raw_retention_days"): ("raw_retention_days", _int(1, 365)),
    ("master_key", "backend"): ("master_key_backend", _choice("local", "kms")),
    ("master_key", "kms_key_id"): ("kms_key_id", _text),
    ("master_key", "kms_region"): ("kms_region", _text),
    ("master_key", "kms_endpoint_url"): ("kms_endpoint_url", _text),
    ("cloudfront", "key_group_id"): ("cloudfront_key_group_id", _text),
    ("cloudfront", "endpoint_url"): ("cloudfront_endpoint_url", _text),
    ("api", "audience"): ("api_audience", _text),
    ("api", "max_token_lifetime"): ("max_token_lifetime", _int(60, 86400)),
    ("pages", "principal"): ("pages_principal", _text),
    ("pages", "scope"): ("pages_scope", _choice("path", "prefix")),
    ("pages", "form"): ("pages_form", _choice("query", "path")),
    ("proxy", "trusted"): ("trusted_proxies", _networks),
    ("tls", "cert_file"): ("tls_cert_file", _text),
    ("tls", "key_file"): ("tls_key_file", _text),
    ("tls", "client_ca_file"): ("tls_client_ca_file", _text),
    ("tls", "require_client_cert"): ("tls_require_client_cert", _client_cert_routes),
    ("metrics", "enabled"): ("metrics_enabled", _bool),
    ("metrics", "allow"): ("metrics_allow", _networks),
    ("metrics", "token_file"): ("metrics_token_file", _text),
    ("edge", "token_file"): ("edge_token_file", _text),
    ("edge", "mtls"): ("edge_mtls", _bool),
    ("edge", "client_names"): ("edge_client_names", _strings),
    ("edge", "hmac_secrets"): ("edge_hmac_secrets", _bool),
    ("edge", "max_wait"): ("edge_max_wait", _seconds(0.0, 30.0)),
    ("logging", "format"): ("log_format", _choice("json", "text")),
    ("logging", "level"): ("log_level", _choice(*LOG_LEVELS)),
    ("logging", "access_log"): ("access_log", _bool),
    ("limits", "principal_rate"): ("limit_principal_rate", _number(0.0, 1e6, "a rate per second")),
    ("limits", "principal_burst"): ("limit_principal_burst", _int(0, 10_000_000)),
    ("limits", "key_rate"): ("limit_key_rate", _number(0.0, 1e6, "a rate per second")),
    ("limits", "key_burst"): ("limit_key_burst", _int(0, 10_000_000)),
    ("limits", "redirect_rate"): ("limit_redirect_rate", _number(0.0, 1e6, "a rate per second")),
    ("limits", "redirect_burst"): ("limit_redirect_burst", _int(0, 10_000_000)),
    ("limits", "sync_every"): ("limit_sync_every", _seconds(0.05, 60.0)),
    ("alerts", "outsider_use"): ("alert_outsider_use", _bool),
    ("alerts", "outsider_skip"): ("alert_outsider_skip", _strings),
    ("alerts", "unusual_kinds"): ("alert_unusual_kinds", _kinds),
    ("alerts", "learning_days"): ("alert_learning_days", _number(0.0, 365.0, "a number of days")),
    ("alerts", "rate_factor"): ("alert_rate_factor", _number(1.5, 1000.0, "a factor")),
    ("alerts", "rate_floor"): ("alert_rate_floor", _int(1, 10_000_000)),
    ("alerts", "cooldown"): ("alert_cooldown", _int(0, 7 * 86400)),
    ("webhooks", "timeout"): ("webhook_timeout", _seconds(0.1, 120.0)),
    ("webhooks", "max_attempts"): ("webhook_max_attempts", _int(1, 100)),
    ("webhooks", "backoff"): ("webhook_backoff", _seconds(0.01, 3600.0)),
    ("viewer", "issuer"): ("issuer", _text),
    ("viewer", "audience"): ("audience", _text),
    ("viewer", "jwks_url"): ("jwks_url", _text),
    ("viewer", "public_key_file"): ("public_key_file", _text),
    ("viewer", "algorithms"): ("algorithms", _algorithms),
    ("viewer", "workspaces_claim"): ("workspaces_claim", _text),
    ("viewer", "cookie"): ("cookie", _text),
}


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _env_name(section: str, key: str) -> str:
    return "GATEWAY_" + "_".join(p for p in (section, key) if p).upper()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


_PROFILE_KEYS = {"dialect", "base_url", "secret_file", "options", "unattributable"}


def _profile(name: str, table: Any) -> ProfileConfig:
    where = f"profiles.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _PROFILE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(unknown)}")
    options = table.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise ConfigError(f"{where}.options must be a table of strings")
    unattributable = table.get("unattributable", False)
    if not isinstance(unattributable, bool):
        raise ConfigError(f"{where}.unattributable must be true or false, got {unattributable!r}")
    return ProfileConfig(
        name=name,
        dialect=_text(f"{where}.dialect", table.get("dialect")),
        base_url=_url(f"{where}.base_url", table.get("base_url")),
        secret_file=_text(f"{where}.secret_file", table.get("secret_file", "")),
        options=tuple(sorted(options.items())),
        unattributable=unattributable,
    )


_WEBHOOK_KEYS = {"url", "secret_file", "events", "previous_secret_file"}


def _webhook(name: str, table: dict[str, Any]) -> WebhookEndpoint:
    where = f"webhooks.{name}"
    unknown = sorted(set(table) - _WEBHOOK_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(unknown)}")
    secret_file = _text(f"{where}.secret_file", table.get("secret_file", ""))
    if not secret_file:
        raise ConfigError(f"{where}.secret_file is required: every delivery is signed")
    return WebhookEndpoint(
        name=name,
        url=_url(f"{where}.url", table.get("url")),
        secret_file=secret_file,
        events=_strings(f"{where}.events", table.get("events", [])),
        previous_secret_file=_text(f"{where}.previous_secret_file", table.get("previous_secret_file", "")),
    )


def _webhooks(data: dict[str, Any]) -> tuple[WebhookEndpoint, ...]:
    """The [webhooks.NAME] tables (the [webhooks] section's own keys are ordinary settings)."""
    section = data.get("webhooks", {})
    if not isinstance(section, dict):
        raise ConfigError("webhooks must be a table")
    return tuple(_webhook(n, t) for n, t in sorted(section.items()) if isinstance(t, dict))


def _from_file(data: dict[str, Any], path: Path) -> dict[tuple[str, str], Any]:
    values: dict[tuple[str, str], Any] = {}
    for name, value in data.items():
        if name == "profiles":
            continue
        if isinstance(value, dict):
            # [webhooks.NAME] endpoint tables are read by _webhooks
            values.update({(name, k): v for k, v in value.items() if not (name == "webhooks" and isinstance(v, dict))})
        else:
            values[("", name)] = value
    unknown = sorted(_dotted(*k) for k in values if k not in _FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return values


def _from_env(environ: Mapping[str, str]) -> dict[tuple[str, str], Any]:
    known = {_env_name(*k): k for k in _FIELDS}
    unknown = sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known and n not in NOT_SETTINGS)
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(_guess(n, known) for n in unknown)}")
    return {known[name]: value for name, value in environ.items() if name in known}


def _guess(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, [*known, *NOT_SETTINGS], n=1, cutoff=0.8)
    return f"{name} (did you mean {close[0]}?)" if close else name


def load_config(data_dir: Path, config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    path = config_file or data_dir / CONFIG_FILE
    data = _read_toml(path)
    raw = {**_from_file(data, path), **_from_env(environ)}
    top: dict[str, Any] = {}
    viewer: dict[str, Any] = {}
    for (section, key), value in raw.items():
        attr, parse = _FIELDS[(section, key)]
        target = viewer if section == "viewer" else top
        target[attr] = parse(_dotted(section, key), value)
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError("profiles must be a table of [profiles.NAME] tables")
    config = Config(
        data_dir=data_dir,
        viewer=ViewerConfig(**viewer),
        profiles=tuple(_profile(n, t) for n, t in sorted(profiles.items())),
        webhooks=_webhooks(data),
        **top,
    )
    _check(config)
    return config


def _check(config: Config) -> None:
    if config.default_ttl > config.max_ttl:
        raise ConfigError("signing.default_ttl must not exceed signing.max_ttl")
    if config.pages_form == "path" and config.pages_scope != "prefix":
        raise ConfigError('pages.form = "path" needs pages.scope = "prefix": a path token covers a directory')
    if config.master_key_backend == "kms" and not config.kms_key_id:
        raise ConfigError('master_key.kms_key_id is required with master_key.backend = "kms"')
    _check_tls(config)
    _check_limits(config)
    _check_edge(config)
    viewer = config.viewer
    if viewer.jwks_url and viewer.public_key_file:
        raise ConfigError("viewer.jwks_url and viewer.public_key_file are exclusive")
    if not config.production:
        return
    if not viewer.issuer or viewer.issuer == DEV_IDP_ISSUER:
        raise ConfigError("viewer.issuer: production needs a real identity provider, not the development one")
    if not viewer.audience or not (viewer.jwks_url or viewer.public_key_file):
        raise ConfigError("viewer.audience and viewer.jwks_url (or public_key_file) are required")


def _check_tls(config: Config) -> None:
    """Settings that only make sense together; the files themselves are read by gateway.web.tls."""
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        raise ConfigError("tls.cert_file and tls.key_file go together: set both or neither")
    if config.tls_client_ca_file and not config.tls_cert_file:
        raise ConfigError("tls.client_ca_file needs tls.cert_file: client certificates are asked for only over TLS")
    if config.tls_require_client_cert and not config.tls_client_ca_file:
        raise ConfigError("tls.require_client_cert needs tls.client_ca_file: the CA the client certificates come from")


def _check_edge(config: Config) -> None:
    if config.edge_mtls and not config.tls_client_ca_file:
        raise ConfigError("edge.mtls needs tls.client_ca_file: the CA of the edge's client certificate")
    if config.edge_mtls and not config.edge_client_names:
        # The CA also vouches for backends and proxies: a certificate from it alone must not read HMAC secrets.
        raise ConfigError("edge.mtls needs edge.client_names: the name (CN or DNS name) of the edge's certificate")
    if config.edge_hmac_secrets and not config.edge_mtls:
        raise ConfigError("edge.hmac_secrets needs edge.mtls: HMAC secrets travel only over mutual TLS")


def _check_limits(config: Config) -> None:
    """A bucket with a rate needs room for at least one request."""
    for scope in ("principal", "key", "redirect"):
        rate, burst = getattr(config, f"limit_{scope}_rate"), getattr(config, f"limit_{scope}_burst")
        if rate and burst < 1:
            raise ConfigError(f"limits.{scope}_burst must be at least 1 when limits.{scope}_rate is set")
