"""GET /metrics over HTTP, parsed with prometheus_client's own text parser, after real requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import load_config
from gateway.model import Permission, Visibility
from gateway.observe.metrics import Metrics, Tally
from gateway.services import open_services
from gateway.web.app import create_app
from tests.http_support import raw_http
from tests.support import ADMIN, Clock, World, init_data_dir

ON_BEHALF = (Permission.SIGN, Permission.SIGN_ON_BEHALF)
# Labels that would make a series per key, item, principal or address: never allowed.
_HIGH_CARDINALITY = {"kid", "key", "media_id", "media", "principal", "principal_id", "subject", "ip", "client", "url"}


async def _scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}, read by the Prometheus text parser."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            assert not _HIGH_CARDINALITY & set(sample.labels), (sample.name, sample.labels)
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _get(samples: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def web(world: World) -> World:
    await world.principal("web", *ON_BEHALF)
    await world.media("m1")
    await world.media("pub", visibility=Visibility.PUBLIC)
    return world


@pytest.fixture
def auth(web: World) -> dict[str, str]:
    """One principal token for the whole test (the clock stands still), so the token cache sees it again."""
    return web.auth("web")


async def _sign(client: TestClient, auth: dict[str, str], **body: object) -> dict:  # type: ignore[type-arg]
    payload = {"media_id": "m1", "rendition": "video", **body}
    response = await client.post("/v1/sign", json=payload, headers=auth)
    return {"status": response.status, **(await response.json())}


async def test_issuances_and_denials_are_counted_by_reason_and_profile(
    client: TestClient, web: World, auth: dict[str, str]
) -> None:
    before = await _scrape(client)
    assert _get(before, "gateway_issuance_total", outcome="issued", reason="owner", profile="native") is None
    assert (await _sign(client, auth, viewer={"id": "alice"}))["status"] == 200
    assert (await _sign(client, auth, viewer={"id": "alice"}))["status"] == 200
    assert (await _sign(client, auth, viewer={"id": "bob"}))["status"] == 403
    assert (await _sign(client, auth, media_id="pub", viewer={"id": "bob"}))["status"] == 200
    assert (await _sign(client, auth, media_id="gone", viewer={"id": "bob"}))["status"] == 404
    after = await _scrape(client)
    assert _get(after, "gateway_issuance_total", outcome="issued", reason="owner", profile="native") == 2
    assert _get(after, "gateway_issuance_total", outcome="issued", reason="public", profile="native") == 1
    assert _get(after, "gateway_issuance_total", outcome="denied", reason="not-permitted", profile="native") == 1
    assert _get(after, "gateway_issuance_total", outcome="denied", reason="not_found", profile="native") == 1


async def _three_item_batch(client: TestClient, auth: dict[str, str]) -> None:
    """alice's video and thumbnail of m1 (owner) and pub's thumbnail (public), in one batch."""
    response = await client.post(
        "/v1/sign/batch", headers=auth,
        json={"items": [{"media_id": "m1", "rendition": "video"}, {"media_id": "pub", "rendition": "thumbnail"},
                        {"media_id": "m1", "rendition": "thumbnail"}], "viewer": {"id": "alice"}},
    )  # fmt: skip
    assert response.status == 200


async def test_a_batch_record_still_counts_each_url(client: TestClient, web: World, auth: dict[str, str]) -> None:
    """One ``url:issued_batch`` record for the three URLs (docs/audit.md, "Batch records"), three issuances counted."""
    await _three_item_batch(client, auth)
    after = await _scrape(client)
    assert _get(after, "gateway_issuance_total", outcome="issued", reason="owner", profile="native") == 2
    assert _get(after, "gateway_issuance_total", outcome="issued", reason="public", profile="native") == 1


async def test_verify_outcomes_are_counted_by_reason(client: TestClient, web: World, auth: dict[str, str]) -> None:
    url = (await _sign(client, auth, viewer={"id": "alice"}))["url"]
    uri = url.removeprefix("https://cdn.example.com")
    for presented in (uri, uri, uri.replace("gw_sig=", "gw_sig=A"), "relative"):
        await client.get("/v1/verify", headers={"X-Original-URI": presented})
    web.clock.advance(361)  # the cache window (60 s) and the default ttl
    await client.get("/v1/verify", headers={"X-Original-URI": uri})
    samples = await _scrape(client)
    assert _get(samples, "gateway_verify_total", decision="allow", reason="ok") == 2
    assert _get(samples, "gateway_verify_total", decision="deny", reason="bad-signature") == 1
    assert _get(samples, "gateway_verify_total", decision="deny", reason="non-canonical-path") == 1
    assert _get(samples, "gateway_verify_total", decision="deny", reason="expired") == 1


async def test_audit_commits_are_timed_and_their_group_sizes_counted(
    client: TestClient, web: World, auth: dict[str, str]
) -> None:
    before = await _scrape(client)
    commits = _get(before, "gateway_audit_commit_seconds_count") or 0
    await _three_item_batch(client, auth)
    after = await _scrape(client)
    assert _get(after, "gateway_audit_commit_seconds_count") == commits + 1
    assert (_get(after, "gateway_audit_commit_seconds_sum") or 0) > (_get(before, "gateway_audit_commit_seconds_sum")
                                                                     or 0)  # fmt: skip
    # One group of one record, the batch record listing the three URLs (docs/audit.md, "Batch records").
    groups = _get(after, "gateway_audit_group_records_count") or 0
    in_one = _get(after, "gateway_audit_group_records_bucket", le="1.0") or 0
    was_in_one = _get(before, "gateway_audit_group_records_bucket", le="1.0") or 0
    assert groups == commits + 1 and in_one - was_in_one == 1


async def test_cache_hit_ratios_are_read_at_scrape_time(client: TestClient, web: World, auth: dict[str, str]) -> None:
    token = web.viewer_token("alice")
    for _ in range(3):  # the first use of a token is a miss, the two after it hits
        assert (await _sign(client, auth, viewer_token=token))["status"] == 200
    samples = await _scrape(client)
    hits = _get(samples, "gateway_cache_requests_total", cache="viewer_tokens", result="hit")
    misses = _get(samples, "gateway_cache_requests_total", cache="viewer_tokens", result="miss")
    assert (hits, misses) == (2, 1)
    assert _get(samples, "gateway_cache_hit_ratio", cache="viewer_tokens") == pytest.approx(2 / 3)
    principal = (_get(samples, "gateway_cache_requests_total", cache="principal_tokens", result="hit"),
                 _get(samples, "gateway_cache_requests_total", cache="principal_tokens", result="miss"))  # fmt: skip
    assert principal == (2, 1)
    for cache in ("verify_decisions", "media"):
        assert _get(samples, "gateway_cache_hit_ratio", cache=cache) is not None


async def test_state_view_and_checkpoint_age(client: TestClient, web: World) -> None:
    services = web.services
    assert _get(await _scrape(client), "gateway_checkpoint_age_seconds") is None  # no checkpoint yet: left out
    checkpoint = await services.checkpointer.write(web.clock())
    await services.sampler.sample()
    web.clock.advance(42)
    samples = await _scrape(client)
    assert _get(samples, "gateway_checkpoint_age_seconds") == web.clock() - checkpoint.time == 42
    age = _get(samples, "gateway_state_view_age_seconds")
    assert age is not None and 0 <= age < services.config.state_stale_after


async def test_per_key_issuance_rate_is_one_gauge_not_a_series_per_key(
    client: TestClient, web: World, auth: dict[str, str]
) -> None:
    for _ in range(3):
        assert (await _sign(client, auth, viewer={"id": "alice"}))["status"] == 200
    web.clock.advance(60)  # the minute is complete: it is the last full minute now
    samples = await _scrape(client)
    assert _get(samples, "gateway_key_issuance_rate_max") == 3
    assert _get(samples, "gateway_keys_issuing") == 1


@pytest.fixture
async def guarded(tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest) -> AsyncIterator[TestClient]:
    """The app with the [metrics] settings given as the (indirect) parameter."""
    config = await asyncio.to_thread(init_data_dir, tmp_path)
    (tmp_path / "keys" / "metrics.token").write_text("scrape-token-0123456789\n")  # used if configured
    with (tmp_path / "gateway.toml").open("a") as toml:
        toml.write(f"\n[metrics]\n{request.param}\n")
    services = await open_services(load_config(config.data_dir, environ={}), clock=Clock())
    client = await aiohttp_client(create_app(services, close_services=False))
    yield client
    await client.close()  # the app's own cleanup still needs the store
    await services.close()


@pytest.mark.parametrize("guarded", ['allow = ["10.0.0.0/8"]'], indirect=True)
async def test_metrics_answer_only_allowed_peers(guarded: TestClient) -> None:
    response = await guarded.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})  # the TCP peer counts
    assert response.status == 403
    assert await response.json() == {
        "error": "forbidden", "message": "metrics are served only to the networks in metrics.allow",
    }  # fmt: skip


@pytest.mark.parametrize("guarded", ['token_file = "keys/metrics.token"'], indirect=True)
async def test_metrics_with_a_token_file_need_the_bearer_token(guarded: TestClient) -> None:
    assert (await guarded.get("/metrics")).status == 401
    assert (await guarded.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456"})).status == 401
    good = await guarded.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert good.status == 200 and "gateway_issuance_total" in await good.text()
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
    not_utf8 = await raw_http(guarded.port, request)  # was a 500 and a traceback
    assert (not_utf8.status, not_utf8.json()["error"]) == (401, "unauthenticated")


async def test_revocation_and_denial_reasons_stay_low_cardinality(
    client: TestClient, web: World, auth: dict[str, str]
) -> None:
    bodies = [await _sign(client, auth, viewer={"id": "alice"}) for _ in range(2)]
    await web.services.admin.revoke_key(ADMIN, bodies[0]["kid"], "test", web.clock())
    uri = bodies[0]["url"].removeprefix("https://cdn.example.com")
    await client.get("/v1/verify", headers={"X-Original-URI": uri})
    samples = await _scrape(client)
    assert _get(samples, "gateway_verify_total", decision="deny", reason="key-revoked") == 1


def test_a_tally_folds_labels_past_its_bound_into_other() -> None:
    tally = Tally(2, limit=2)
    for reason in ("a", "b", "c", "d"):
        tally.add(("deny", reason))
    assert tally.counts == {("deny", "a"): 1, ("deny", "b"): 1, ("other", "other"): 2}


def test_an_unconfigured_profile_is_counted_as_other() -> None:
    metrics = Metrics(profiles=frozenset({"native", "cf"}))
    assert (metrics.profile_label("cf"), metrics.profile_label("attacker-chosen"), metrics.profile_label(None)) == (
        "cf", "other", "other",
    )  # fmt: skip
