"""CDN profiles: which dialect, base URL, shared secret and options a deployment signs with.

The ``native`` profile always exists (the gateway's own format on
``signing.cdn_base_url``); ``[profiles.NAME]`` tables add the CDNs a
deployment fronts. Shared secrets are read once at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from gateway.config import Config, ProfileConfig
from gateway.errors import ConfigError, InvalidInput
from gateway.keys.material import KeyMaterial
from gateway.signing.dialects import DialectRegistry
from gateway.signing.dialects.base import Dialect

NATIVE = "native"


@dataclass(frozen=True)
class Profile:
    name: str
    dialect: Dialect
    base_url: str
    options: Mapping[str, str] = field(default_factory=dict)
    secret: KeyMaterial | None = None

    @property
    def keyed(self) -> bool:
        """True when URLs name the signing key (each principal signs with its own key)."""
        return self.dialect.capabilities.key_id_field is not None


class Profiles:
    def __init__(self, profiles: Mapping[str, Profile], default: str) -> None:
        if default not in profiles:
            raise ConfigError(f"signing.profile: no profile named {default!r}")
        self._profiles = dict(profiles)
        self.default = default

    def get(self, name: str | None) -> Profile:
        try:
            return self._profiles[name or self.default]
        except KeyError:
            raise InvalidInput(f"unknown profile {name!r} (known: {', '.join(sorted(self._profiles))})") from None

    def names(self) -> list[str]:
        return sorted(self._profiles)


def _secret(config: Config, spec: ProfileConfig, dialect: Dialect) -> KeyMaterial | None:
    keyed = dialect.capabilities.key_id_field is not None
    if keyed:
        if spec.secret_file:
            raise ConfigError(f"profiles.{spec.name}.secret_file: {dialect.name} signs with each principal's key")
        return None
    if not spec.secret_file:
        raise ConfigError(f"profiles.{spec.name}.secret_file is required for the {dialect.name} dialect")
    path = Path(spec.secret_file)
    path = path if path.is_absolute() else config.data_dir / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"profiles.{spec.name}.secret_file: {exc}") from None
    try:
        return dialect.load_key(data, None)
    except InvalidInput as exc:
        raise ConfigError(f"profiles.{spec.name}.secret_file: {exc.message}") from None


def load_profiles(config: Config, registry: DialectRegistry) -> Profiles:
    profiles = {NATIVE: Profile(NATIVE, registry.get(NATIVE), config.cdn_base_url)}
    for spec in config.profiles:
        try:
            dialect = registry.get(spec.dialect)
        except InvalidInput as exc:
            raise ConfigError(f"profiles.{spec.name}.dialect: {exc.message}") from None
        options = MappingProxyType(dict(spec.options))
        profiles[spec.name] = Profile(spec.name, dialect, spec.base_url, options, _secret(config, spec, dialect))
    return Profiles(profiles, config.default_profile)
