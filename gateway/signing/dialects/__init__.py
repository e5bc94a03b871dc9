"""Registry of signed-URL dialects, by name. Registering a name twice is an error."""

from __future__ import annotations

from gateway.errors import InvalidInput
from gateway.signing.dialects.base import Dialect


class DialectRegistry:
    def __init__(self) -> None:
        self._dialects: dict[str, Dialect] = {}

    def register(self, dialect: Dialect) -> None:
        if dialect.name in self._dialects:
            raise ValueError(f"dialect {dialect.name!r} is already registered")
        self._dialects[dialect.name] = dialect

    def get(self, name: str) -> Dialect:
        try:
            return self._dialects[name]
        except KeyError:
            known = ", ".join(sorted(self._dialects))
            raise InvalidInput(f"unknown dialect {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._dialects)

    def all(self) -> list[Dialect]:
        return [self._dialects[name] for name in self.names()]


def default_registry() -> DialectRegistry:
    """Every dialect the gateway speaks, one module each."""
    from gateway.signing.dialects.akamai import AkamaiDialect
    from gateway.signing.dialects.bunny import BunnyDialect
    from gateway.signing.dialects.cloudfront import CloudFrontDialect
    from gateway.signing.dialects.google_cdn import GoogleCdnDialect
    from gateway.signing.dialects.media_cdn import MediaCdnDialect
    from gateway.signing.dialects.native import NativeDialect
    from gateway.signing.dialects.nginx_secure_link import NginxSecureLinkDialect
    from gateway.signing.dialects.nimble import NimbleDialect
    from gateway.signing.dialects.s3 import S3Dialect
    from gateway.signing.dialects.wowza import WowzaDialect

    registry = DialectRegistry()
    for dialect in (
        NativeDialect(), CloudFrontDialect(), GoogleCdnDialect(), MediaCdnDialect(), AkamaiDialect(),
        NginxSecureLinkDialect(), WowzaDialect(), NimbleDialect(), BunnyDialect(), S3Dialect(),
    ):  # fmt: skip
        registry.register(dialect)
    return registry
