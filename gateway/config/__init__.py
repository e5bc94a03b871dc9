"""Configuration: one frozen, typed object built once at start-up.

Sources, later wins: built-in defaults, the TOML file, ``GATEWAY_<SECTION>_<KEY>``
environment variables (``GATEWAY_SERVER_PORT=9000``; lists comma-separated).
Every problem is a ``ConfigError`` naming the offending key. An unknown key is
one too, in the file and in the environment alike: a ``GATEWAY_`` variable that
is no setting (a typo: ``SERVER_PROT`` for ``SERVER_PORT``) stops start-up,
unless it is one of the few named in ``NOT_SETTINGS``.

One concept per module: ``model`` (what the configuration is), ``values`` (how one setting's value is read),
``settings`` (which settings exist, and the named tables), ``loading`` (where settings come from) and
``checks`` (how settings must agree).
"""

from gateway.config.loading import CONFIG_FILE, load_config
from gateway.config.model import DEV_IDP_ISSUER, Config, ProfileConfig, ViewerConfig, WebhookEndpoint
from gateway.config.settings import ENV_PREFIX, NOT_SETTINGS
from gateway.config.values import CLIENT_CERT_ROUTES, LOG_LEVELS, PRINCIPAL_KINDS, VIEWER_ALGORITHMS
from gateway.errors import ConfigError

__all__ = [
    "CLIENT_CERT_ROUTES",
    "CONFIG_FILE",
    "DEV_IDP_ISSUER",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "NOT_SETTINGS",
    "PRINCIPAL_KINDS",
    "VIEWER_ALGORITHMS",
    "Config",
    "ConfigError",
    "ProfileConfig",
    "ViewerConfig",
    "WebhookEndpoint",
    "load_config",
]
