from __future__ import annotations

import pytest

from gateway.errors import InvalidInput
from gateway.signing.dialects import DialectRegistry, default_registry
from gateway.signing.dialects.native import NativeDialect


def test_registry_refuses_a_second_dialect_of_the_same_name() -> None:
    registry = DialectRegistry()
    registry.register(NativeDialect())
    with pytest.raises(ValueError, match="already registered"):
        registry.register(NativeDialect())


def test_unknown_dialect_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="cloudfront"):
        default_registry().get("rtmp")


def test_the_default_registry_speaks_every_required_format() -> None:
    assert default_registry().names() == [
        "akamai", "bunny", "cloudfront", "google-cdn", "media-cdn", "native", "nginx", "nimble", "s3", "wowza",
    ]  # fmt: skip
