"""How settings must agree: rules across settings, checked once the configuration is built (each problem a
``ConfigError`` naming the settings involved). The files the settings name are read where they are used."""

from __future__ import annotations

from gateway.config.model import DEV_IDP_ISSUER, Config
from gateway.errors import ConfigError


def check(config: Config) -> None:
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
