"""Which settings exist: every ``(section, key)`` of the file, the field of ``Config`` (or ``ViewerConfig``) it
sets and how its value is read; the environment's names for them; and the named tables (``[profiles.NAME]``,
``[webhooks.NAME]``), read as a whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.config.model import ProfileConfig, WebhookEndpoint
from gateway.config.values import (
    LOG_LEVELS,
    algorithms,
    boolean,
    choice,
    client_cert_routes,
    integer,
    kinds,
    networks,
    number,
    seconds,
    strings,
    text,
    url,
)
from gateway.errors import ConfigError

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

# (section, key) in the file -> (field on Config or ViewerConfig, parser)
FIELDS: dict[tuple[str, str], tuple[str, Callable[[str, Any], Any]]] = {
    ("", "environment"): ("environment", choice("development", "production")),
    ("server", "host"): ("host", text),
    ("server", "port"): ("port", integer(0, 65535)),
    ("server", "shutdown_timeout"): ("shutdown_timeout", seconds(0.0, 3600.0)),
    ("server", "header_timeout"): ("header_timeout", seconds(0.1, 300.0)),
    ("server", "body_timeout"): ("body_timeout", seconds(0.1, 3600.0)),
    ("server", "send_timeout"): ("send_timeout", seconds(0.1, 3600.0)),
    ("server", "keepalive_timeout"): ("keepalive_timeout", seconds(0.1, 3600.0)),
    ("server", "max_connections"): ("max_connections", integer(0, 10_000_000)),
    ("database", "url"): ("database_url", text),
    ("signing", "cdn_base_url"): ("cdn_base_url", url),
    ("signing", "default_ttl"): ("default_ttl", integer(1, 7 * 86400)),
    ("signing", "max_ttl"): ("max_ttl", integer(1, 7 * 86400)),
    ("signing", "cache_window"): ("cache_window", integer(0, 3600)),
    ("signing", "batch_max_items"): ("batch_max_items", integer(1, 1000)),
    ("signing", "profile"): ("default_profile", text),
    ("verify", "profiles"): ("verify_profiles", strings),
    ("state", "stale_after"): ("state_stale_after", seconds(0.1, 60.0)),
    ("state", "poll_every"): ("state_poll_every", seconds(0.0, 10.0)),
    ("state", "media_cache"): ("state_media_cache", integer(100, 10_000_000)),
    ("audit", "checkpoint_every_records"): ("checkpoint_every_records", integer(1, 10_000_000)),
    ("audit", "checkpoint_every_seconds"): ("checkpoint_every_seconds", integer(1, 86400)),
    ("audit", "export_dir"): ("audit_export_dir", text),
    ("audit", "s3_bucket"): ("audit_s3_bucket", text),
    ("audit", "s3_prefix"): ("audit_s3_prefix", text),
    ("audit", "s3_endpoint_url"): ("audit_s3_endpoint_url", text),
    ("audit", "s3_region"): ("audit_s3_region", text),
    ("audit", "raw_retention_days"): ("raw_retention_days", integer(1, 365)),
    ("master_key", "backend"): ("master_key_backend", choice("local", "kms")),
    ("master_key", "kms_key_id"): ("kms_key_id", text),
    ("master_key", "kms_region"): ("kms_region", text),
    ("master_key", "kms_endpoint_url"): ("kms_endpoint_url", text),
    ("cloudfront", "key_group_id"): ("cloudfront_key_group_id", text),
    ("cloudfront", "endpoint_url"): ("cloudfront_endpoint_url", text),
    ("api", "audience"): ("api_audience", text),
    ("api", "max_token_lifetime"): ("max_token_lifetime", integer(60, 86400)),
    ("pages", "principal"): ("pages_principal", text),
    ("pages", "scope"): ("pages_scope", choice("path", "prefix")),
    ("pages", "form"): ("pages_form", choice("query", "path")),
    ("proxy", "trusted"): ("trusted_proxies", networks),
    ("tls", "cert_file"): ("tls_cert_file", text),
    ("tls", "key_file"): ("tls_key_file", text),
    ("tls", "client_ca_file"): ("tls_client_ca_file", text),
    ("tls", "require_client_cert"): ("tls_require_client_cert", client_cert_routes),
    ("metrics", "enabled"): ("metrics_enabled", boolean),
    ("metrics", "allow"): ("metrics_allow", networks),
    ("metrics", "token_file"): ("metrics_token_file", text),
    ("edge", "token_file"): ("edge_token_file", text),
    ("edge", "mtls"): ("edge_mtls", boolean),
    ("edge", "client_names"): ("edge_client_names", strings),
    ("edge", "hmac_secrets"): ("edge_hmac_secrets", boolean),
    ("edge", "max_wait"): ("edge_max_wait", seconds(0.0, 30.0)),
    ("logging", "format"): ("log_format", choice("json", "text")),
    ("logging", "level"): ("log_level", choice(*LOG_LEVELS)),
    ("logging", "access_log"): ("access_log", boolean),
    ("limits", "principal_rate"): ("limit_principal_rate", number(0.0, 1e6, "a rate per second")),
    ("limits", "principal_burst"): ("limit_principal_burst", integer(0, 10_000_000)),
    ("limits", "key_rate"): ("limit_key_rate", number(0.0, 1e6, "a rate per second")),
    ("limits", "key_burst"): ("limit_key_burst", integer(0, 10_000_000)),
    ("limits", "redirect_rate"): ("limit_redirect_rate", number(0.0, 1e6, "a rate per second")),
    ("limits", "redirect_burst"): ("limit_redirect_burst", integer(0, 10_000_000)),
    ("limits", "sync_every"): ("limit_sync_every", seconds(0.05, 60.0)),
    ("alerts", "outsider_use"): ("alert_outsider_use", boolean),
    ("alerts", "outsider_skip"): ("alert_outsider_skip", strings),
    ("alerts", "unusual_kinds"): ("alert_unusual_kinds", kinds),
    ("alerts", "learning_days"): ("alert_learning_days", number(0.0, 365.0, "a number of days")),
    ("alerts", "rate_factor"): ("alert_rate_factor", number(1.5, 1000.0, "a factor")),
    ("alerts", "rate_floor"): ("alert_rate_floor", integer(1, 10_000_000)),
    ("alerts", "cooldown"): ("alert_cooldown", integer(0, 7 * 86400)),
    ("webhooks", "timeout"): ("webhook_timeout", seconds(0.1, 120.0)),
    ("webhooks", "max_attempts"): ("webhook_max_attempts", integer(1, 100)),
    ("webhooks", "backoff"): ("webhook_backoff", seconds(0.01, 3600.0)),
    ("viewer", "issuer"): ("issuer", text),
    ("viewer", "audience"): ("audience", text),
    ("viewer", "jwks_url"): ("jwks_url", text),
    ("viewer", "public_key_file"): ("public_key_file", text),
    ("viewer", "algorithms"): ("algorithms", algorithms),
    ("viewer", "workspaces_claim"): ("workspaces_claim", text),
    ("viewer", "cookie"): ("cookie", text),
}


def dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def env_name(section: str, key: str) -> str:
    return "GATEWAY_" + "_".join(p for p in (section, key) if p).upper()


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
        dialect=text(f"{where}.dialect", table.get("dialect")),
        base_url=url(f"{where}.base_url", table.get("base_url")),
        secret_file=text(f"{where}.secret_file", table.get("secret_file", "")),
        options=tuple(sorted(options.items())),
        unattributable=unattributable,
    )


_WEBHOOK_KEYS = {"url", "secret_file", "events", "previous_secret_file"}


def _webhook(name: str, table: dict[str, Any]) -> WebhookEndpoint:
    where = f"webhooks.{name}"
    unknown = sorted(set(table) - _WEBHOOK_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(unknown)}")
    secret_file = text(f"{where}.secret_file", table.get("secret_file", ""))
    if not secret_file:
        raise ConfigError(f"{where}.secret_file is required: every delivery is signed")
    return WebhookEndpoint(
        name=name,
        url=url(f"{where}.url", table.get("url")),
        secret_file=secret_file,
        events=strings(f"{where}.events", table.get("events", [])),
        previous_secret_file=text(f"{where}.previous_secret_file", table.get("previous_secret_file", "")),
    )


def profiles(data: dict[str, Any]) -> tuple[ProfileConfig, ...]:
    """The [profiles.NAME] tables."""
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigError("profiles must be a table of [profiles.NAME] tables")
    return tuple(_profile(n, t) for n, t in sorted(tables.items()))


def webhooks(data: dict[str, Any]) -> tuple[WebhookEndpoint, ...]:
    """The [webhooks.NAME] tables (the [webhooks] section's own keys are ordinary settings)."""
    section = data.get("webhooks", {})
    if not isinstance(section, dict):
        raise ConfigError("webhooks must be a table")
    return tuple(_webhook(n, t) for n, t in sorted(section.items()) if isinstance(t, dict))
