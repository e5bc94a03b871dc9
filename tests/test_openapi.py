"""GET /openapi.json: generated from the route table and the body models, valid OpenAPI 3.1, and in agreement
with what the server actually accepts."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from gateway.errors import InvalidInput
from gateway.model import check_name
from gateway.web import openapi, parsing, routes, schemas


async def test_the_served_document_is_the_generated_one_and_valid(client: TestClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    served = await response.json()
    assert served == openapi.document(routes.ROUTES, viewer_cookie="gw_viewer")
    validate(served)  # OpenAPI 3.1, every $ref resolves
    assert served["openapi"] == "3.1.0"


async def test_every_served_route_is_documented_and_every_documented_route_served(client: TestClient) -> None:
    app = client.server.app
    assert app is not None
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    served -= {("HEAD", path) for _, path in served}  # aiohttp answers HEAD wherever it answers GET
    table = {(r.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", r.path)) for r in routes.ROUTES}  # aiohttp's canonical
    assert served == table
    doc = openapi.document(routes.ROUTES, viewer_cookie="gw_viewer")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {("GET" if m == "*" else m, p) for m, p in table}


def test_operations_have_unique_ids_and_secured_ones_document_401() -> None:
    doc = openapi.document(routes.ROUTES, viewer_cookie="gw_viewer")
    operations = [op for ops in doc["paths"].values() for op in ops.values()]
    assert len({op["operationId"] for op in operations}) == len(operations) == len(routes.ROUTES)
    for op in operations:
        if op["security"]:
            assert "401" in op["responses"], op["operationId"]
            assert set(op["responses"]["401"]["headers"]) == {"WWW-Authenticate"}


def test_the_cookie_scheme_names_the_configured_cookie() -> None:
    doc = openapi.document(routes.ROUTES, viewer_cookie="session")
    assert doc["components"]["securitySchemes"]["viewerCookie"] == {
        "type": "apiKey", "in": "cookie", "name": "session", "description": "the same, as a cookie",
    }  # fmt: skip


# ---- the document and the server agree on every body

_FIELDS = {
    model: sorted({*model.__struct_fields__, "medai_id", "id", "workspaces", "video", "poster", "items"})
    for model in (schemas.SignRequest, schemas.BatchRequest, schemas.MediaRequest)
}
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    # JSON Schema counts 60.0 as an integer; the gateway, like before, wants 60 (the one known difference).
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
    | st.text(max_size=10)
    | st.sampled_from(["video", "thumbnail", "poster", "path", "prefix", "m1", "alice", "a\n", "10.0.0.1", "/v/a.m3u8"])
    | st.sampled_from(["private", "public", "workspace", ""])
)


_VALIDATORS = {model: Draft202012Validator(msgspec.json.schema(model)) for model in _FIELDS}


def _values(names: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        _SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(names), inner, max_size=4),
        max_leaves=10,
    )


_VALID = {
    schemas.SignRequest: {"media_id": "m1", "rendition": "video"},
    schemas.BatchRequest: {"items": [{"media_id": "m1", "rendition": "video"}]},
    schemas.MediaRequest: {"owner": "a", "workspace": "w", "visibility": "private", "renditions": {"video": "/v/a"}},
}


def _bodies(model: type) -> st.SearchStrategy[dict[str, Any]]:
    """Random objects, and a valid body with random fields laid over it (so both answers come up often)."""
    noise = st.dictionaries(st.sampled_from(_FIELDS[model]), _values(_FIELDS[model]), max_size=6)
    one_field = st.dictionaries(st.sampled_from(sorted(model.__struct_fields__)), _SCALARS, max_size=1)
    return noise | one_field.map(lambda extra: {**_VALID[model], **extra})


_BODIES = {model: _bodies(model) for model in _FIELDS}


def _accepted(model: type, body: Any) -> bool:
    try:
        parsing.decode(json.dumps(body).encode(), model)
    except InvalidInput:
        return False
    return True


@pytest.mark.parametrize("model", list(_FIELDS), ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_schema_accepts_exactly_what_the_server_accepts(model: type, data: st.DataObject) -> None:
    body = data.draw(_BODIES[model])
    accepted = _accepted(model, body)
    event(f"accepted={accepted}")
    assert accepted == _VALIDATORS[model].is_valid(body), body


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=140) | st.from_regex(schemas.NAME_PATTERN))
def test_the_documented_name_pattern_is_check_name(value: str) -> None:
    """Path parameters are checked with check_name; the document draws them with NAME_PATTERN."""
    try:
        check_name(value, "x")
    except InvalidInput:
        by_code = False
    else:
        by_code = True
    assert by_code == Draft202012Validator({"type": "string", "pattern": schemas.NAME_PATTERN}).is_valid(value)


def test_non_finite_numbers_cannot_be_encoded_into_a_response() -> None:
    """Responses go out through msgspec, which writes NaN as null rather than an invalid JSON token."""
    encoded = msgspec.json.encode(schemas.Media(id="m", owner="o", workspace="w", visibility=schemas.Visibility.PUBLIC,
                                                renditions={}, prefixes={}, updated_at=math.nan,
                                                links_revoked_at=None))  # fmt: skip
    assert json.loads(encoded)["updated_at"] is None
