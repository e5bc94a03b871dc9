"""CDN profiles: which dialect, base URL, shared secret and options a deployment signs with.

The ``native`` profile always exists (the gateway's own format on
``signing.cdn_base_url``); ``[profiles.NAME]`` tables add the CDNs a
deployment fronts. Shared secrets are read once at start-up.

Two start-up rules keep the verifier's trust boundary (docs/dialects.md):
a profile whose signature would not cover the principal's key id is refused
unless marked ``unattributable`` (then /v1/verify refuses its URLs), and
``verify.profiles`` lists the only profiles /v1/verify may use: the
deployment chooses, never the viewer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from gateway.config import Config, ProfileConfig
from gateway.errors import ConfigError, InvalidInput, VerificationFailed
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
    # False when the URLs cannot name the principal (or the operator said so): /v1/verify refuses them.
    attributable: bool = True

    @property
    def keyed(self) -> bool:
        """True when URLs name the signing key (each principal signs with its own key)."""
        return self.dialect.capabilities.key_id_field is not None


class Profiles:
    def __init__(self, profiles: Mapping[str, Profile], default: str, verifiable: Sequence[str] = ()) -> None:
        if default not in profiles:
            raise ConfigError(f"signing.profile: no profile named {default!r}")
        unknown = [name for name in verifiable if name not in profiles]
        if unknown:
            raise ConfigError(f"verify.profiles: no profile named {unknown[0]!r}")
        self._profiles = dict(profiles)
        self.default = default
        self.verifiable = tuple(verifiable) or (default,)

    def for_verification(self, requested: str | None, from_trusted_proxy: bool) -> Profile:
        """The profile /v1/verify uses: chosen by the deployment, never by the viewer.

        No name: the first of ``verify.profiles``. A name (``X-Gateway-Profile``)
        counts only when the TCP peer is a trusted proxy, which overwrites the
        client's header, and only for a profile in ``verify.profiles``.
        """
        if requested is None:
            return self._profiles[self.verifiable[0]]
        if not from_trusted_proxy or requested not in self.verifiable:
            raise VerificationFailed("profile-not-allowed")
        return self._profiles[requested]

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
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"profiles.{spec.name}.secret_file: {exc}") from None
    if mode & 0o077:
        # Anyone who can read it can sign for every principal at that CDN: refused, as the master key is.
        raise ConfigError(f"profiles.{spec.name}.secret_file: {path} is readable by others (mode {mode:o}); chmod 600")
    try:
        return dialect.load_key(data, None)
    except InvalidInput as exc:
        raise ConfigError(f"profiles.{spec.name}.secret_file: {exc.message}") from None


def _attributable(spec: ProfileConfig, dialect: Dialect, options: Mapping[str, str]) -> bool:
    """Refuse a profile whose signature would not cover the key id, unless the operator marked it."""
    option = dialect.capabilities.attribution_option
    where = f"profiles.{spec.name}." + (f"options.{option}" if option else "dialect")
    try:
        covered = dialect.attribution_covered(options)
    except InvalidInput as exc:
        raise ConfigError(f"{where}: {exc.message}") from None
    if spec.unattributable or covered:
        return covered and not spec.unattributable
    raise ConfigError(
        f"{where}: {dialect.name} URLs signed this way do not sign the principal's key id, so a revoked "
        f"key could not be refused; sign it (docs/dialects.md) or set profiles.{spec.name}.unattributable = true"
    )


def load_profiles(config: Config, registry: DialectRegistry) -> Profiles:
    profiles = {NATIVE: Profile(NATIVE, registry.get(NATIVE), config.cdn_base_url)}
    for spec in config.profiles:
        try:
            dialect = registry.get(spec.dialect)
        except InvalidInput as exc:
            raise ConfigError(f"profiles.{spec.name}.dialect: {exc.message}") from None
        options = MappingProxyType(dict(spec.options))
        secret = _secret(config, spec, dialect)
        attributable = _attributable(spec, dialect, options)
        profiles[spec.name] = Profile(spec.name, dialect, spec.base_url, options, secret, attributable)
    return Profiles(profiles, config.default_profile, config.verify_profiles)
