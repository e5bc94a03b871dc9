from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.services import Services, open_services
from gateway.web.app import create_app
from tests.support import Clock, World, init_data_dir


def require_service(what: str) -> None:
    """Skip when a service is missing, unless CI demands every service (GATEWAY_REQUIRE_SERVICES=1)."""
    if os.environ.get("GATEWAY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {what}")
    pytest.skip(f"service not available: {what}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return init_data_dir(tmp_path)


@pytest.fixture
async def services(config: Config, clock: Clock) -> AsyncIterator[Services]:
    opened = await open_services(config, clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
def world(services: Services, clock: Clock) -> World:
    return World(services, clock)


@pytest.fixture
async def client(services: Services, aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(services, close_services=False))
