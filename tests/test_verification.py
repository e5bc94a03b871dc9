"""The verifier (gateway.signing.verification) itself: each check's exact refusal, for keyed and shared-secret formats.

Signed URLs come from /v1/sign in a deployment with every dialect as a profile
(tests/dialect_fixtures.py); they are then presented to ``Verifier.verify``
directly, so each test names the one reason it expects.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.errors import VerificationFailed
from gateway.model import KeyAlgorithm, Permission
from gateway.signing.dialects.base import Redemption
from gateway.signing.dialects.native import NativeDialect
from gateway.signing.verification import Accepted, Decisions, Verifier
from gateway.web.app import create_app
from tests.dialect_fixtures import open_deployment
from tests.support import ADMIN, Clock, World

CLIENT = "127.0.0.1"
# Shared-secret profiles: one secret per profile, the principal's key id carried in a signed field.
SHARED_SECRET = ("akamai", "bunny", "bunnydir", "wowza", "nginx", "mcdn")
BOUND_TO_AN_ADDRESS = ("nginx", "nimble")  # their default expressions sign the client address


@pytest.fixture
async def deployment(config: Config, clock: Clock, aiohttp_client: Any) -> AsyncIterator[tuple[World, TestClient]]:
    world = await open_deployment(config.data_dir, clock)
    client = await aiohttp_client(create_app(world.services, close_services=False))
    yield world, client
    await client.close()  # the app's shutdown uses the services: close it first
    await world.services.close()


async def _sign(client: TestClient, world: World, profile: str, principal: str = "web", **extra: Any) -> dict[str, Any]:
    body = {"media_id": "a", "rendition": "video", "viewer": {"id": "bob"}, "profile": profile, **extra}
    if profile in BOUND_TO_AN_ADDRESS:
        body["client_ip"] = CLIENT
    response = await client.post("/v1/sign", json=body, headers=world.auth(principal))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _verify(world: World, uri: str, profile: str, at: float | None = None) -> Accepted:
    redemption = Redemption(uri, world.clock() if at is None else at, CLIENT)
    return await world.services.verifier.verify(redemption, world.services.profiles.get(profile))


async def _reason(world: World, uri: str, profile: str, at: float | None = None) -> str:
    with pytest.raises(VerificationFailed) as refused:
        await _verify(world, uri, profile, at)
    return refused.value.reason


def _forget(world: World) -> None:
    """Drop remembered decisions: the next verify checks the signature again."""
    world.services.verifier.decisions = Decisions(100)


@pytest.mark.parametrize("profile", SHARED_SECRET)
async def test_a_shared_secret_url_is_attributed_to_the_key_it_names(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    world, client = deployment
    signed = await _sign(client, world, profile)
    accepted = await _verify(world, signed["url"], profile)
    assert (accepted.kid, accepted.principal_id, accepted.expires) == (signed["kid"], "web", signed["expires_at"])


@pytest.mark.parametrize("profile", SHARED_SECRET)
async def test_a_shared_secret_url_is_refused_once_its_key_is_revoked(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    """The profile's secret still verifies the signature: the key it names must be checked after it."""
    world, client = deployment
    remembered = (await _sign(client, world, profile))["url"]
    fresh = await _sign(client, world, profile, viewer={"id": "carol"})
    await _verify(world, remembered, profile)
    await world.services.admin.revoke_key(ADMIN, fresh["kid"], "leaked", world.clock())
    assert await _reason(world, remembered, profile) == "key-revoked"  # a remembered decision
    assert await _reason(world, fresh["url"], profile) == "key-revoked"  # never seen before


@pytest.mark.parametrize("profile", ["native", "cf", "gcdn", *SHARED_SECRET])
async def test_a_url_is_refused_once_its_principal_is_disabled(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, profile))["url"]
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    assert await _reason(world, uri, profile) == "principal-disabled"


async def test_a_key_is_trusted_until_its_not_after_and_not_a_second_longer(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    now = world.clock()
    await world.principal("short", Permission.SIGN, Permission.SIGN_ON_BEHALF, key=None)
    key = await world.services.admin.create_key(ADMIN, "short", KeyAlgorithm.ED25519, now, not_after=now + 100)
    signed = await _sign(client, world, "native", principal="short")
    assert signed["kid"] == key.kid and signed["expires_at"] > now + 100
    uri = signed["url"]
    assert (await _verify(world, uri, "native", at=now + 99)).kid == key.kid
    assert await _reason(world, uri, "native", at=now + 100) == "key-expired"  # remembered decision
    _forget(world)
    assert await _reason(world, uri, "native", at=now + 100) == "key-expired"


@pytest.mark.parametrize(
    ("profile", "field"),
    [("native", "gw_kid"), ("cf", "Key-Pair-Id"), ("gcdn", "KeyName")],
)
async def test_a_keyed_url_naming_an_unknown_key_is_refused_before_its_signature(
    deployment: tuple[World, TestClient], profile: str, field: str
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, profile))["url"]
    rest = uri.partition(f"{field}=")[2]
    value = rest.split("&", 1)[0]
    assert await _reason(world, uri.replace(f"{field}={value}", f"{field}=unknown0key"), profile) == "unknown-key"


async def test_a_native_url_may_not_name_a_key_by_its_cdn_id(deployment: tuple[World, TestClient]) -> None:
    """Native URLs name gateway kids; a CDN's id for a key (CloudFront's Key-Pair-Id) is not one."""
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    kid = uri.split("gw_kid=", 1)[1].split("&", 1)[0]
    assert await _reason(world, uri.replace(f"gw_kid={kid}", "gw_kid=K2JCJMDEHXQW5F"), "native") == "unknown-key"


async def test_a_cloudfront_url_names_its_key_by_the_cdn_id(deployment: tuple[World, TestClient]) -> None:
    world, client = deployment
    signed = await _sign(client, world, "cf")
    assert "Key-Pair-Id=K2JCJMDEHXQW5F" in signed["url"]
    accepted = await _verify(world, signed["url"], "cf")
    assert (accepted.kid, accepted.principal_id) == (signed["kid"], "web")
    assert accepted.kid != "K2JCJMDEHXQW5F"  # attributed to the gateway's kid behind the CDN's id


async def test_a_remembered_decision_is_refused_at_its_expiry_to_the_second(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    signed = await _sign(client, world, "akamai")
    uri = signed["url"]
    assert (await _verify(world, uri, "akamai", at=signed["expires_at"] - 1)).expires == signed["expires_at"]
    assert await _reason(world, uri, "akamai", at=signed["expires_at"]) == "expired"


async def test_a_stale_view_refuses_everything_until_it_is_current_again(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    state = world.services.state
    confirmed = state.confirmed_at
    state.confirmed_at = confirmed - 3600
    assert await _reason(world, uri, "native") == "state-stale"
    state.confirmed_at = confirmed
    assert (await _verify(world, uri, "native")).principal_id == "web"


async def test_an_unattributable_profile_is_refused_before_its_signature(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "nimble"))["url"]
    assert await _reason(world, uri, "nimble") == "unattributable"


async def test_a_url_holding_a_fragment_is_malformed_whatever_its_signature(
    deployment: tuple[World, TestClient],
) -> None:
    """Clients never send '#': parsers disagree about it, so it is refused before the path is even read."""
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    assert await _reason(world, uri + "#x", "native") == "malformed"
    assert await _reason(world, uri.replace("/master.m3u8", "/master.m3u8#"), "native") == "malformed"


async def test_a_non_canonical_path_is_refused_before_any_dialect(deployment: tuple[World, TestClient]) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    assert await _reason(world, uri.replace("/v/a/", "/v/a/%2E/"), "native") == "non-canonical-path"


def test_a_remembered_decision_cannot_be_changed_by_whoever_reads_it() -> None:
    decisions = Decisions(1)
    decisions.put(b"key", Accepted("gwk_a", "web", 10), "/v/a")
    found = decisions.get(b"key", "/v/a")
    assert found is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.principal_id = "someone-else"  # type: ignore[misc]
    assert decisions.get(b"key", "/v/a") == Accepted("gwk_a", "web", 10)


def test_decisions_keep_the_newest_up_to_their_capacity() -> None:
    decisions = Decisions(2)
    first, second, third = (Accepted(f"gwk_{n}", "web", 10) for n in "abc")
    decisions.put(b"1", first, "/v/1")
    decisions.put(b"2", second, "/v/2")
    assert (decisions.get(b"1", "/v/1"), decisions.get(b"2", "/v/2")) == (first, second)
    decisions.put(b"3", third, "/v/3")
    assert decisions.get(b"1", "/v/1") is None  # the oldest went first
    assert (decisions.get(b"2", "/v/2"), decisions.get(b"3", "/v/3")) == (second, third)
    assert (decisions.hits, decisions.misses) == (4, 1)


def test_a_remembered_path_decision_answers_for_that_path_only_and_a_prefix_for_what_lies_under_it() -> None:
    decisions = Decisions(10)
    path_token = Accepted("gwk_a", "web", 10)
    prefix_token = Accepted("gwk_a", "web", 10, prefix="/v/a/")
    decisions.put(b"path", path_token, "/v/a/x.ts")
    decisions.put(b"prefix", prefix_token, "/v/a/x.ts")
    assert decisions.get(b"path", "/v/a/x.ts") == path_token
    assert decisions.get(b"path", "/v/a/y.ts") is None
    assert decisions.get(b"prefix", "/v/a/y.ts") == prefix_token
    assert decisions.get(b"prefix", "/v/b/y.ts") is None


async def test_a_remembered_decision_skips_only_the_signature_check(
    deployment: tuple[World, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same URL presented again (with or without cookies a non-cookie format ignores) is not verified again."""
    world, client = deployment
    verifier = world.services.verifier
    checked: list[str] = []
    original = verifier._verify

    async def counting(redemption: Redemption, profile: Any, token: bytes) -> Accepted:
        checked.append(redemption.url)
        return await original(redemption, profile, token)

    monkeypatch.setattr(verifier, "_verify", counting)
    signed = await _sign(client, world, "native")
    profile = world.services.profiles.get("native")
    first = await verifier.verify(Redemption(signed["url"], world.clock(), CLIENT), profile)
    again = await verifier.verify(Redemption(signed["url"], world.clock(), CLIENT, {"session": "x"}), profile)
    assert again == first and (again.kid, again.principal_id) == (signed["kid"], "web")
    assert len(checked) == 1
    assert (verifier.decisions.hits, verifier.decisions.misses) == (1, 1)


async def test_an_expiry_further_ahead_than_the_gateway_ever_signs_is_refused_to_the_second(
    deployment: tuple[World, TestClient],
) -> None:
    """max_ttl and the cache window (what the gateway may sign) plus 60 seconds of clock skew between replicas,
    and not a second more."""
    world, client = deployment
    signed = await _sign(client, world, "native")
    config = world.services.config
    furthest = signed["expires_at"] - config.max_ttl - config.cache_window - 60
    assert (await _verify(world, signed["url"], "native", at=furthest)).expires == signed["expires_at"]
    _forget(world)
    assert await _reason(world, signed["url"], "native", at=furthest - 1) == "expiry-too-far"


@pytest.mark.parametrize("profile", ["native", "cf", "gcdn", *SHARED_SECRET])
async def test_a_non_canonical_path_is_refused_in_every_profile_whatever_the_dialect_would_say(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, profile))["url"]
    assert "/v/a/master.m3u8" in uri
    assert await _reason(world, uri.replace("/v/a/", "/v/a/./"), profile) == "non-canonical-path"
    assert await _reason(world, uri.replace("/v/a/", "/v/b/%2E%2E/a/"), profile) == "non-canonical-path"


@pytest.mark.parametrize("profile", ["native", "cf", "akamai"])
async def test_a_url_no_parser_can_split_is_malformed_not_an_error(
    deployment: tuple[World, TestClient], profile: str
) -> None:
    """An unterminated IPv6 host: urlsplit raises; the verifier answers with a refusal, never a 500."""
    world, client = deployment
    uri = (await _sign(client, world, profile))["url"]
    broken = "http://[::1" + uri[uri.index("/v/a/") :]
    assert await _reason(world, broken, profile) == "malformed"


async def test_an_unattributable_profile_is_refused_whatever_its_signature(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "nimble"))["url"]
    assert await _reason(world, uri.replace("wmsAuthSign=", "wmsAuthSign=x"), "nimble") == "unattributable"


async def test_an_accepted_url_is_named_by_the_digest_of_what_was_verified(
    deployment: tuple[World, TestClient],
) -> None:
    """Named by what the signature covers (one name however the URL is spelled), for the native format; other
    formats by the URL as presented."""
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    accepted = await _verify(world, uri, "native")
    signed = NativeDialect._parse(uri).params
    reordered = uri.split("?")[0] + "?" + "&".join(f"{k}={v}" for k, v in reversed(signed.items()))
    assert accepted.token == (await _verify(world, reordered, "native")).token
    assert accepted.token != hashlib.sha256(uri.encode()).digest()[:16]
    uri = (await _sign(client, world, "akamai"))["url"]
    assert (await _verify(world, uri, "akamai")).token == hashlib.sha256(uri.encode()).digest()[:16]


@pytest.mark.parametrize(("profile", "field"), [("cf", "Key-Pair-Id"), ("gcdn", "KeyName")])
async def test_a_keyed_url_naming_no_key_is_malformed(
    deployment: tuple[World, TestClient], profile: str, field: str
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, profile))["url"]
    value = uri.partition(f"{field}=")[2].split("&", 1)[0]
    assert await _reason(world, uri.replace(f"&{field}={value}", "").replace(f"?{field}={value}&", "?"), profile) == (
        "malformed"
    )


async def test_a_shared_secret_profile_without_its_secret_refuses_everything(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "akamai"))["url"]
    profile = dataclasses.replace(world.services.profiles.get("akamai"), secret=None)
    with pytest.raises(VerificationFailed) as refused:
        await world.services.verifier.verify(Redemption(uri, world.clock(), CLIENT), profile)
    assert refused.value.reason == "no-secret"


async def test_a_verified_url_that_names_no_principal_is_unattributable_even_if_the_profile_claims_otherwise(
    deployment: tuple[World, TestClient],
) -> None:
    """Second line of defence: a profile wrongly marked attributable still cannot let in a URL naming nobody."""
    world, client = deployment
    uri = (await _sign(client, world, "nimble"))["url"]
    profile = dataclasses.replace(world.services.profiles.get("nimble"), attributable=True)
    with pytest.raises(VerificationFailed) as refused:
        await world.services.verifier.verify(Redemption(uri, world.clock(), CLIENT), profile)
    assert refused.value.reason == "unattributable"


class _NamesNoKey:
    """A keyed dialect whose parser finds no key id (a future dialect's bug): the verifier must not look one up."""

    def __init__(self, dialect: Any) -> None:
        self._dialect = dialect

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dialect, name)

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None


async def test_a_keyed_profile_whose_url_names_no_key_is_malformed_not_an_unknown_key(
    deployment: tuple[World, TestClient],
) -> None:
    world, client = deployment
    uri = (await _sign(client, world, "native"))["url"]
    native = world.services.profiles.get("native")
    profile = dataclasses.replace(native, dialect=_NamesNoKey(native.dialect))
    assert profile.keyed
    with pytest.raises(VerificationFailed) as refused:
        await world.services.verifier.verify(Redemption(uri, world.clock(), CLIENT), profile)
    assert refused.value.reason == "malformed"


@pytest.mark.parametrize(("signed_after", "reason"), [(0, "links-revoked"), (1, None)])
async def test_links_revoked_in_the_second_a_url_was_issued_refuse_it_and_a_second_later_do_not(
    deployment: tuple[World, TestClient], signed_after: int, reason: str | None
) -> None:
    """Issue times are whole seconds: a revocation in the URL's own second refuses it (the safe side)."""
    world, client = deployment
    world.clock.now = 1_800_000_000.0
    await world.services.admin.revoke_links(ADMIN, "a", "leak", world.clock())
    world.clock.now += signed_after
    signed = await _sign(client, world, "native")
    if reason is None:
        assert (await _verify(world, signed["url"], "native")).issued_at == 1_800_000_000 + signed_after
    else:
        assert await _reason(world, signed["url"], "native") == reason


async def test_a_verifier_remembers_at_most_50_000_decisions_by_default(deployment: tuple[World, TestClient]) -> None:
    """The memory a client can fill by padding valid URLs with junk parameters is bounded."""
    world, _ = deployment
    services = world.services
    verifier = Verifier(services.keyring, services.state, services.config.max_ttl)
    accepted = Accepted("gwk_a", "web", 10)
    for n in range(50_001):
        verifier.decisions.put(n.to_bytes(4, "big"), accepted, "/v/a")
    assert verifier.decisions.get((0).to_bytes(4, "big"), "/v/a") is None
    assert verifier.decisions.get((1).to_bytes(4, "big"), "/v/a") == accepted
