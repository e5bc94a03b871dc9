from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings

from gateway.config import Config
from gateway.services import Services, open_services
from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore
from gateway.web.app import create_app
from tests import postgres, servicelogs
from tests.aws_support import moto_endpoint  # noqa: F401 (a fixture: moto's server for S3, KMS, CloudFront)
from tests.support import Clock, World, init_data_dir

# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE. "mutation" (tools/mutate.py) makes a run reproducible:
# the same examples for every mutant (derandomize), no example database replaying a failure found for another
# mutant, and no deadline or slowness check failing a test because two mutants share a busy machine.
settings.register_profile(
    "mutation", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    servicelogs.forget_all()  # each test reports only the services it started


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failing test's report carries the tail of every service log it watched (tests/servicelogs.py)."""
    report: pytest.TestReport = yield
    if report.failed:
        report.sections.extend(servicelogs.tails())
    return report


def require_service(what: str) -> None:
    """Skip when a service is missing, unless CI demands every service (GATEWAY_REQUIRE_SERVICES=1)."""
    if os.environ.get("GATEWAY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {what}")
    pytest.skip(f"service not available: {what}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One fresh database on the local PostgreSQL for the whole run (see tests/postgres.py)."""
    url = postgres.create_database()
    if url is None:
        require_service(f"PostgreSQL at {postgres.SERVER}")
    assert url is not None
    yield url
    postgres.drop_database(url)


@pytest.fixture
async def postgres_url(postgres_database: str) -> str:
    """The run's PostgreSQL database, emptied for this test."""
    await postgres.reset_schema(postgres_database)
    servicelogs.watch_postgresql()
    return postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
async def store(  # every store implementation, for contract tests
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "sqlite":
        opened = await SqliteStore.open(tmp_path / "contract.db", create=True)
    else:
        from gateway.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_database")  # a sync fixture: resolvable from here
        await postgres.reset_schema(url)
        servicelogs.watch_postgresql()
        opened = await PostgresStore.open(url, migrate=True)
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """A data directory initialised on each store: SQLite, or the test PostgreSQL database (schema reset)."""
    data = tmp_path / "gw"
    data.mkdir()
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database")  # a sync fixture: resolvable from here
        await postgres.reset_schema(url)
        (data / "gateway.toml").write_text(f'[database]\nurl = "{url}"\n')  # init keeps it
    return await asyncio.to_thread(init_data_dir, data)


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
