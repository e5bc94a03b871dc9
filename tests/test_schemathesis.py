"""Fuzzing the live gateway from its own OpenAPI document (schemathesis), and its token edge (hypothesis).

The gateway runs on a real port in a thread, behind ``gateway.web.server.Runner`` as ``gatewayctl serve`` runs
it. schemathesis draws valid and invalid requests from ``/openapi.json`` and checks every answer: never a 5xx,
a status the document lists, the declared content type, a body and headers that match its schema, and invalid
input refused. CI runs a bounded budget; ``GATEWAY_FUZZ_EXAMPLES`` raises it for a long campaign.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.model import Permission, Visibility
from gateway.services import Services, open_services
from gateway.web import openapi, routes
from gateway.web.app import create_app
from gateway.web.server import Runner
from tests import jwt_strategies
from tests.http_support import dev_idp_key, principal_key
from tests.support import Clock, World, init_data_dir

SCHEMA = schemathesis.openapi.from_dict(openapi.document(routes.ROUTES, viewer_cookie="gw_viewer"))
SCHEMA.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    with_security_parameters=False,  # tokens are the JWT fuzzer's business; here they are real
    max_examples=max(jwt_strategies.EXAMPLES // 12, 15),
)
# (operation or token place, status) -> requests sent; written to $GATEWAY_FUZZ_REPORT after a campaign
SENT: Counter[tuple[str, int]] = Counter()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


@dataclass(frozen=True)
class Live:
    url: str
    principal: str
    viewer: str
    world: World


async def _populate(services: Services) -> World:
    world = World(services, Clock(time.time()))
    perms = (Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE)
    await world.principal("web", *perms)
    await world.media("m1", owner="alice", visibility=Visibility.PRIVATE)
    await world.media("pub", visibility=Visibility.PUBLIC)
    return world


def _serve(data_dir: Path, started: list[Live], stop: threading.Event) -> None:
    config = init_data_dir(data_dir)

    async def main() -> None:
        services = await open_services(config)
        world = await _populate(services)
        runner = Runner(create_app(services), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        started.append(
            Live(f"http://127.0.0.1:{port}", world.token("web", ttl=3600), world.viewer_token("alice"), world)
        )
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    started: list[Live] = []
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(tmp_path_factory.mktemp("live"), started, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started, "the gateway did not start"
    yield started[0]
    stop.set()
    thread.join(timeout=30)
    if report := os.environ.get("GATEWAY_FUZZ_REPORT"):
        Path(report).write_text(json.dumps(sorted([*key, n] for key, n in SENT.items()), indent=0))


def _auth(case: schemathesis.Case, live: Live) -> dict[str, str]:
    security = case.operation.definition.raw.get("security") or []
    if {routes.PRINCIPAL: []} in security:
        return {"Authorization": f"Bearer {live.principal}"}
    if {routes.VIEWER: []} in security:
        return {"Authorization": f"Bearer {live.viewer}"}
    return {}


@SCHEMA.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_document(case: schemathesis.Case, live: Live) -> None:
    headers = {**(case.headers or {}), **_auth(case, live)}  # a real token, so the fuzzing gets past the 401
    response = case.call(base_url=live.url, headers=headers, allow_redirects=False, timeout=10)
    SENT[case.operation.label, response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)


# ---- the token edge over HTTP: whatever is presented as a token, the answer is a JSON 401
# (or, for bytes no HTTP header may hold, aiohttp's own refusal, in JSON too)


@pytest.mark.parametrize("where", ["principal", "viewer-header", "viewer-cookie", "viewer-in-body"])
@settings(max_examples=max(jwt_strategies.EXAMPLES // 4, 25), deadline=None, suppress_health_check=list(HealthCheck))
@given(token=st.data())
def test_fuzz_tokens_over_http_are_always_a_json_401(live: Live, where: str, token: st.DataObject) -> None:
    key = dev_idp_key(live.world) if where.startswith("viewer") else principal_key(live.world, "web")[1]
    value = token.draw(jwt_strategies.tokens(key))
    response = _present(live, where, value)
    if response is None:  # a value no HTTP client sends in a header (a line break), or no token at all
        return
    SENT[where, response.status_code] += 1
    body = response.json()
    if response.status_code == 400 and where == "viewer-in-body":  # JSON can spell what no header can carry
        assert any("\ud800" <= c <= "\udfff" for c in value), value
        message = "the body is not valid JSON: a string holds an unpaired UTF-16 surrogate escape: not Unicode text"
        assert body == {"error": "invalid_request", "message": message}, value
        return
    if response.status_code == 400:  # bytes that are no HTTP header at all: aiohttp's parser refuses them, in JSON
        assert body == {"error": "invalid_request", "message": "malformed HTTP request"}, value
        return
    assert response.status_code == 401, (value, response.status_code, response.text)
    assert body["error"] == "unauthenticated" and set(body) == {"error", "message"}


def _present(live: Live, where: str, token: str) -> requests.Response | None:
    sign = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}
    raw = token.encode("utf-8", "surrogatepass")  # lone surrogates go out as the (invalid) UTF-8 bytes they would be
    try:
        if where == "principal":
            return requests.post(
                f"{live.url}/v1/sign", json=sign, headers={"Authorization": b"Bearer " + raw}, timeout=10
            )
        if where == "viewer-header":
            return requests.get(f"{live.url}/m/m1/video", headers={"Authorization": b"Bearer " + raw},
                                allow_redirects=False, timeout=10)  # fmt: skip
        if where == "viewer-cookie":
            return requests.get(f"{live.url}/m/m1/video", headers={"Cookie": b"gw_viewer=" + raw},
                                allow_redirects=False, timeout=10)  # fmt: skip
        if not token:
            return None  # an empty viewer_token is a malformed body (400), not a token
        # json.dumps spells lone surrogates as "\\udXXX" escapes: a JSON body can carry what no header can
        body = json.dumps({"media_id": "m1", "rendition": "video", "viewer_token": token})
        headers = {"Authorization": f"Bearer {live.principal}", "Content-Type": "application/json"}
        return requests.post(f"{live.url}/v1/sign", data=body, headers=headers, timeout=10)
    except (requests.exceptions.InvalidHeader, ValueError):
        return None
