"""What the configuration is: one frozen, typed object built once at start-up (``gateway.config.loading``), and
the tables it holds (profiles, webhook endpoints, the viewer's identity provider)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from gateway.netaddr import IPNetwork

DEV_IDP_ISSUER = "urn:gateway:dev-idp"
# Who may scrape /metrics when metrics.allow is not set: this host only.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


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
    metrics_allow: tuple[IPNetwork, ...] = LOOPBACK
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
