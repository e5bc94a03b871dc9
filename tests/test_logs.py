"""Structured logs: one JSON object per line, the request id on every line of a request, IPs masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.observe import logs
from gateway.services import Services
from gateway.web.app import create_app
from tests.http_support import GatewayTestServer


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The gateway's JSON logging on a buffer, at info level, as ``gatewayctl serve`` installs it."""
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure("json", "info", out)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def logged_client(services: Services, stream: io.StringIO) -> AsyncIterator[TestClient]:
    """The app behind the runner with the access log on (``logging.access_log = true``)."""
    server = GatewayTestServer(create_app(services, close_services=False))
    await server.start_server(access_log=logging.getLogger(logs.ACCESS_LOGGER), access_log_class=logs.AccessLogger)
    client = TestClient(server)
    await client.start_server()
    yield client
    await client.close()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_event_is_one_json_line_naming_its_request(logged_client: TestClient, stream: io.StringIO) -> None:
    response = await logged_client.get(
        "/v1/verify/v/m1/a.ts?gw_exp=1&gw_sig=x", headers={"X-Request-Id": "req-42", "X-Forwarded-For": "203.0.113.9"}
    )
    assert response.status == 403
    assert response.headers["X-Request-Id"] == "req-42"
    deny, access = [line for line in _lines(stream) if line.get("request_id") == "req-42"]
    assert (deny["logger"], deny["level"], deny["message"]) == ("gateway.verify", "info", "deny req-42: malformed")
    assert access["logger"] == "gateway.access"
    assert {k: access[k] for k in ("method", "route", "status", "client")} == {
        "method": "GET", "route": "/v1/verify/{tail}", "status": 403, "client": "127.0.0.0/24",
    }  # fmt: skip
    assert "gw_sig" not in stream.getvalue()  # the route's pattern is logged, never the signed path itself
    assert "203.0.113.9" not in stream.getvalue()


async def test_a_request_without_an_id_gets_one(logged_client: TestClient, stream: io.StringIO) -> None:
    response = await logged_client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    rid = response.headers["X-Request-Id"]
    assert rid != "bad id with spaces"
    [access] = [line for line in _lines(stream) if line["logger"] == "gateway.access"]
    assert access["request_id"] == rid


def test_every_address_in_a_line_is_masked(stream: io.StringIO) -> None:
    log = logging.getLogger("gateway.test")
    log.warning("peer %s via %s at 12:30:45, v1.2.3", "198.51.100.77", "2001:db8:1:2::9", extra={"peer": "10.1.2.3"})
    [line] = _lines(stream)
    assert line["message"] == "peer 198.51.100.0/24 via 2001:db8:1::/48 at 12:30:45, v1.2.3"
    assert line["peer"] == "10.1.2.0/24"
    assert "request_id" not in line  # logged outside any request


def test_text_format_masks_too() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handler = logs.configure("text", "info", out)
    try:
        logging.getLogger("gateway.test").warning("from 192.0.2.200")
    finally:
        root.removeHandler(handler)
    assert out.getvalue().rstrip().endswith("WARNING gateway.test: from 192.0.2.0/24")


def test_a_network_is_masked_once_and_a_narrow_one_is_masked() -> None:
    assert logs.mask_addresses("127.0.0.0/24 and 2001:db8:1::/48") == "127.0.0.0/24 and 2001:db8:1::/48"
    assert logs.mask_addresses("10.0.0.0/8 but 10.9.8.7/32") == "10.0.0.0/8 but 10.9.8.0/24"
