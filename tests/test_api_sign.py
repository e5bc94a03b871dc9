"""POST /v1/sign and /v1/sign/batch over HTTP, every refusal included."""

from __future__ import annotations

import hashlib

import pytest
from aiohttp.test_utils import TestClient

from gateway.audit.records import AuditEvent
from gateway.model import KeyAlgorithm, Permission, PrincipalKind, Rendition, Visibility
from gateway.store.base import AuditQuery
from tests.support import World

ON_BEHALF = (Permission.SIGN, Permission.SIGN_ON_BEHALF)


@pytest.fixture
async def web(world: World) -> World:
    await world.principal("web", *ON_BEHALF)
    await world.principal("thumbs", *ON_BEHALF, renditions={Rendition.THUMBNAIL})
    await world.principal("nokey", *ON_BEHALF, key=None)
    await world.media("m1")
    await world.media("pub", visibility=Visibility.PUBLIC)
    return world


async def _sign(client: TestClient, world: World, pid: str = "web", **body: object):  # type: ignore[no-untyped-def]
    payload = {"media_id": "m1", "rendition": "video", **body}
    return await client.post("/v1/sign", json=payload, headers=world.auth(pid))


async def test_owner_gets_a_url_and_the_issuance_is_logged(client: TestClient, web: World) -> None:
    response = await _sign(client, web, viewer_token=web.viewer_token("alice"), ttl=120)
    assert response.status == 200
    body = await response.json()
    assert body["url"].startswith("https://cdn.example.com/v/m1/master.m3u8?gw_exp=")
    assert body["expires_at"] == int(web.clock()) + 60 + 120  # the cache window (T0 starts one), then the ttl
    assert body["kid"].startswith("gwk_") and body["issuance_id"].startswith("gwi_")
    [record] = await web.services.store.audit.search(AuditQuery(event="url:issued"))
    assert record.url_sha256 == hashlib.sha256(body["url"].encode()).hexdigest()
    ref = web.services.audit_log.ref("alice")
    assert (record.actor, record.kid, record.subject, record.reason) == ("web", body["kid"], ref, "owner")
    assert record.client_ip is None and record.retention == "viewer"  # sealed under alice's key
    personal = await web.services.audit_log.reveal(record)
    assert personal is not None and (personal["subject"], personal["client_ip"]) == ("alice", "127.0.0.0/24")
    assert personal["user_agent"].startswith("Python/")  # aiohttp's test client
    assert record.detail["issuance_id"] == body["issuance_id"]
    assert body["url"] not in str(record.to_dict())


async def test_issuance_updates_last_used(client: TestClient, web: World) -> None:
    body = await (await _sign(client, web, viewer={"id": "alice"})).json()
    key = await web.services.store.keys.get(body["kid"])
    assert key is not None and key.last_used_at == web.clock()


async def test_denial_is_403_and_logged(client: TestClient, web: World) -> None:
    response = await _sign(client, web, viewer_token=web.viewer_token("bob"))
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
    [record] = await web.services.store.audit.search(AuditQuery(event=AuditEvent.URL_DENIED.value))
    assert (record.reason, record.decision) == ("not-permitted", "deny")
    assert record.subject == web.services.audit_log.ref("bob")


async def test_thumbnail_only_robot_is_refused_a_video(client: TestClient, web: World) -> None:
    assert (await _sign(client, web, "thumbs", viewer={"id": "alice"}, rendition="thumbnail")).status == 200
    response = await _sign(client, web, "thumbs", viewer={"id": "alice"}, rendition="video")
    assert response.status == 403
    assert "rendition-not-allowed" in (await response.json())["message"]


async def test_asserting_a_viewer_needs_sign_on_behalf(client: TestClient, web: World) -> None:
    await web.principal("plain", Permission.SIGN)
    response = await _sign(client, web, "plain", viewer={"id": "alice"})
    assert response.status == 403


async def test_prefix_scope_and_ip_binding(client: TestClient, web: World) -> None:
    response = await _sign(client, web, viewer={"id": "alice"}, scope="prefix", client_ip="2001:db8::7")
    url = (await response.json())["url"]
    assert "gw_pfx=/v/m1/" in url and "gw_ip=2001:db8::7/128" in url


async def test_principal_without_a_key(client: TestClient, web: World) -> None:
    response = await _sign(client, web, "nokey", viewer={"id": "alice"})
    assert response.status == 403
    assert (await response.json())["error"] == "no_active_key"


async def test_newest_key_signs_after_rotation(client: TestClient, web: World) -> None:
    web.clock.advance(1)
    new = await web.services.admin.rotate_key(__import__("tests.support").support.ADMIN, "web", web.clock())
    body = await (await _sign(client, web, viewer={"id": "alice"})).json()
    assert body["kid"] == new.kid


async def test_hmac_keys_sign_too(client: TestClient, web: World) -> None:
    await web.principal("hs", *ON_BEHALF, key=KeyAlgorithm.HMAC_SHA256)
    body = await (await _sign(client, web, "hs", viewer={"id": "alice"})).json()
    assert len(body["url"].split("gw_sig=")[1]) == 43


async def test_engineer_with_a_grant(client: TestClient, web: World) -> None:
    from tests.support import ADMIN

    await web.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    assert (await _sign(client, web, "eve")).status == 403
    grant = await web.services.admin.add_grant(ADMIN, "eve", "m1", "ticket 42", 600, web.clock())
    assert (await _sign(client, web, "eve")).status == 200
    [record] = await web.services.store.audit.search(AuditQuery(event="url:issued"))
    assert record.reason == "grant" and record.detail["grant_id"] == grant.id
    web.clock.advance(601)
    assert (await _sign(client, web, "eve")).status == 403


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"rendition": "poster"}, 400, "invalid_request"),
        ({"media_id": "bad id"}, 400, "invalid_request"),
        ({"media_id": "missing"}, 404, "not_found"),
        ({"ttl": 999999}, 400, "invalid_request"),
        ({"ttl": 0}, 400, "invalid_request"),
        ({"ttl": "60"}, 400, "invalid_request"),
        ({"client_ip": "300.1.1.1"}, 400, "invalid_request"),
        ({"viewer_ip": "10.0.0.0/8"}, 400, "invalid_request"),
        ({"scope": "everything"}, 400, "invalid_request"),
        ({"viewer": "alice"}, 400, "invalid_request"),
        ({"viewer": {"id": "alice"}, "viewer_token": "x"}, 400, "invalid_request"),
        ({"viewer_token": "garbage"}, 401, "unauthenticated"),
        ({"viewer_token": 5}, 400, "invalid_request"),
    ],
)
async def test_bad_requests_get_clear_json_errors(
    client: TestClient, web: World, body: dict, status: int, error: str
) -> None:
    body.setdefault("viewer", {"id": "alice"}) if "viewer_token" not in body else None
    response = await _sign(client, web, **body)
    assert response.status == status
    payload = await response.json()
    assert payload["error"] == error and payload["message"]


async def test_media_not_found_is_logged_as_a_denial(client: TestClient, web: World) -> None:
    await _sign(client, web, media_id="missing", viewer={"id": "alice"})
    [record] = await web.services.store.audit.search(AuditQuery(event="url:denied"))
    assert (record.media_id, record.reason) == ("missing", "not_found")


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({}, b"{}"),
        ({"Authorization": "Basic abc"}, b"{}"),
        ({"Authorization": "Bearer nope"}, b"{}"),
    ],
)
async def test_authentication_is_required(client: TestClient, web: World, headers: dict, data: bytes) -> None:
    response = await client.post("/v1/sign", data=data, headers={**headers, "Content-Type": "application/json"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"] == "unauthenticated"


async def test_disabled_principal_cannot_authenticate(client: TestClient, web: World) -> None:
    from tests.support import ADMIN

    token = web.token("web")
    await web.services.admin.disable_principal(ADMIN, "web", web.clock())
    response = await client.post("/v1/sign", json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


async def test_token_for_another_audience_is_refused(client: TestClient, web: World) -> None:
    token = web.token("web", audience="some-other-service")
    response = await client.post("/v1/sign", json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b"{not json", "application/json"), (b"[1]", "application/json"), (b"\xff\xfe", "application/json"),
     (b"media_id=m1", "application/x-www-form-urlencoded")],
)  # fmt: skip
async def test_malformed_bodies(client: TestClient, web: World, data: bytes, content_type: str) -> None:
    headers = {**web.auth("web"), "Content-Type": content_type}
    response = await client.post("/v1/sign", data=data, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_request"


async def test_oversized_body_is_413(client: TestClient, web: World) -> None:
    headers = {**web.auth("web"), "Content-Type": "application/json"}
    response = await client.post("/v1/sign", data=b"[" + b"0," * 200_000 + b"0]", headers=headers)
    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"


async def test_batch_signs_a_page_of_thumbnails_in_one_call(client: TestClient, web: World) -> None:
    for i in range(50):
        await web.media(f"t{i}", owner="alice" if i % 5 else "zed")
    items = [{"media_id": f"t{i}", "rendition": "thumbnail"} for i in range(50)] + [
        {"media_id": "missing", "rendition": "thumbnail"}
    ]
    body = {"viewer_token": web.viewer_token("alice"), "items": items}
    response = await client.post("/v1/sign/batch", json=body, headers=web.auth("web"))
    assert response.status == 200
    results = (await response.json())["results"]
    assert [r["status"] for r in results] == [403 if i % 5 == 0 else 200 for i in range(50)] + [404]
    assert all(r["url"].startswith("https://cdn.example.com/t/") for r in results if r["status"] == 200)
    logged = await web.services.store.audit.tail(100)
    # The 40 URLs are one batch record listing each in order; each refusal keeps a record of its own.
    (batch,) = [r for r in logged if r.event is AuditEvent.URL_ISSUED_BATCH]
    assert [u["url_sha256"] for u in batch.detail["urls"]] == [
        hashlib.sha256(r["url"].encode()).hexdigest() for r in results if r["status"] == 200
    ]
    assert sum(r.event is AuditEvent.URL_ISSUED for r in logged) == 0
    assert sum(r.event is AuditEvent.URL_DENIED for r in logged) == 11


@pytest.mark.parametrize(
    ("body", "status"),
    [({"items": []}, 400), ({"items": "x"}, 400), ({"items": [1]}, 400),
     ({"items": [{"media_id": "m1", "rendition": "nope"}]}, 400),
     ({"items": [{"media_id": "m1", "rendition": "video"}] * 101}, 413)],
)  # fmt: skip
async def test_bad_batches(client: TestClient, web: World, body: dict, status: int) -> None:
    response = await client.post("/v1/sign/batch", json=body, headers=web.auth("web"))
    assert response.status == status
    assert "error" in await response.json()
    assert await web.services.store.audit.search(AuditQuery(event="url:issued")) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"medai_id": "m1"}, "invalid request body: Object contains unknown field `medai_id`"),
        ({"viewer": {"id": "alice", "workspace": ["w1"]}},
         "invalid request body: Object contains unknown field `workspace` - at `$.viewer`"),
        ({"ttl": True}, "invalid request body: Expected `int | null`, got `bool` - at `$.ttl`"),
        ({"ttl": 60.0}, "invalid request body: Expected `int | null`, got `float` - at `$.ttl`"),
        ({"media_id": 7}, "invalid request body: Expected `str`, got `int` - at `$.media_id`"),
        ({"media_id": "m1\n"}, "invalid request body: Expected `str` matching regex "
         "'^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}(?!\\\\n)$' - at `$.media_id`"),
        ({"viewer_token": ""}, "invalid request body: Expected `str` of length >= 1 - at `$.viewer_token`"),
    ],
    ids=["misspelt-field", "misspelt-nested-field", "bool-ttl", "float-ttl", "int-id", "newline-id", "empty-token"],
)  # fmt: skip
async def test_bodies_are_read_strictly_and_name_the_field(
    client: TestClient, web: World, body: dict, message: str
) -> None:
    body.setdefault("viewer", {"id": "alice"}) if "viewer_token" not in body else None
    response = await _sign(client, web, **body)
    assert response.status == 400
    assert await response.json() == {"error": "invalid_request", "message": message}
    assert await web.services.store.audit.search(AuditQuery(event="url:issued")) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"media_id":"m1","rendition":"video","viewer":{"id":"alice"},"ttl":NaN}', "NaN is not a JSON number"),
        (b'{"media_id":"m1","rendition":"video","viewer":{"id":"alice"},"ttl":Infinity}',
         "Infinity is not a JSON number"),
        (b'{"media_id":"m1","rendition":"video","viewer":{"id":"alice"},"ttl":1e999}',
         "1e999 does not fit a finite number"),
        (b'{"media_id":"pub","rendition":"video","viewer":{"id":"alice"},"media_id":"m1"}', "duplicate key 'media_id'"),
        (b'{"media_id":"m1","rendition":"video","viewer":{"id":"mallory","id":"alice"}}', "duplicate key 'id'"),
    ],
    ids=["nan", "infinity", "overflow", "duplicate-key", "duplicate-nested-key"],
)  # fmt: skip
async def test_json_that_two_parsers_could_read_two_ways_is_refused(
    client: TestClient, web: World, data: bytes, message: str
) -> None:
    headers = {**web.auth("web"), "Content-Type": "application/json"}
    response = await client.post("/v1/sign", data=data, headers=headers)
    assert response.status == 400
    assert await response.json() == {"error": "invalid_request", "message": f"the body is not valid JSON: {message}"}


async def test_batch_items_name_the_misspelt_field(client: TestClient, web: World) -> None:
    body = {"viewer": {"id": "alice"}, "items": [{"media_id": "m1", "rendition": "video"},
                                                 {"media_id": "m1", "rendtion": "video"}]}  # fmt: skip
    response = await client.post("/v1/sign/batch", json=body, headers=web.auth("web"))
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid_request",
        "message": "invalid request body: Object contains unknown field `rendtion` - at `$.items[1]`",
    }


async def test_a_path_token_is_asked_for_with_form_path_and_only_for_a_prefix(client: TestClient, web: World) -> None:
    viewer = {"viewer_token": web.viewer_token("alice")}
    response = await _sign(client, web, scope="prefix", form="path", **viewer)
    url = (await response.json())["url"]
    assert url.startswith("https://cdn.example.com/_t/") and url.endswith("/v/m1/master.m3u8")
    refused = await _sign(client, web, form="path", **viewer)
    assert (refused.status, (await refused.json())["message"]) == (
        400,
        'form "path" is a path token, which covers a directory: it needs scope "prefix"',
    )
    unknown = await _sign(client, web, scope="prefix", form="segment", **viewer)
    assert unknown.status == 400


async def test_a_media_path_under_the_path_token_marker_is_refused(client: TestClient, web: World) -> None:
    await web.principal("writer", Permission.MEDIA_WRITE, key=None)
    body = {"owner": "alice", "workspace": "w1", "visibility": "private", "renditions": {"video": "/_t/x/a.m3u8"}}
    response = await client.put("/v1/media/tok", json=body, headers=web.auth("writer"))
    assert (response.status, (await response.json())["message"]) == (
        400,
        "URL path '/_t/x/a.m3u8' is not allowed: paths under /_t/ are reserved for path tokens",
    )


_ALICE_M1 = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}}


@pytest.mark.parametrize("change", ["revoke-credential", "disable-principal"])
async def test_a_token_remembered_by_one_request_is_refused_on_the_next_after_a_revocation(
    client: TestClient, web: World, change: str
) -> None:
    """The caller's token is verified once and remembered (issue 18): the next request still sees the change."""
    from tests.support import ADMIN

    headers = web.auth("web")
    first = await client.post("/v1/sign", json=_ALICE_M1, headers=headers)
    assert first.status == 200
    assert web.services.identity.principal_tokens.hits == 0 and len(web.services.identity.principal_tokens) == 1
    if change == "revoke-credential":
        await web.services.admin.revoke_credential(ADMIN, web.seeds["web"][0], "leaked", web.clock())
    else:
        await web.services.admin.disable_principal(ADMIN, "web", web.clock())
    second = await client.post("/v1/sign", json=_ALICE_M1, headers=headers)
    assert second.status == 401
    message = "unknown or revoked credential" if change == "revoke-credential" else "principal is disabled"
    assert (await second.json()) == {"error": "unauthenticated", "message": message}
    assert web.services.identity.principal_tokens.hits == 1  # answered from the cache, then refused


async def test_a_key_revoked_between_two_requests_with_one_token_signs_nothing_more(
    client: TestClient, web: World
) -> None:
    from tests.support import ADMIN

    headers = web.auth("web")
    first = await client.post("/v1/sign", json=_ALICE_M1, headers=headers)
    kid = (await first.json())["kid"]
    await web.services.admin.revoke_key(ADMIN, kid, "compromised", web.clock())
    second = await client.post("/v1/sign", json=_ALICE_M1, headers=headers)
    assert second.status == 403
    assert (await second.json()) == {
        "error": "no_active_key",
        "message": "principal web has no active signing key for this CDN",
    }
