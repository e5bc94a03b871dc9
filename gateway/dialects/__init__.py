"""Registry of signed-URL dialects, by name. Registering a name twice is an error."""

from __future__ import annotations

from gateway.dialects.base import Dialect
from gateway.errors import InvalidInput


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


def default_registry() -> DialectRegistry:
    from gateway.dialects.native import NativeDialect

    registry = DialectRegistry()
    registry.register(NativeDialect())
    return registry
