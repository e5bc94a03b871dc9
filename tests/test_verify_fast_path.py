"""The remembered-decision fast path at /v1/verify gives exactly the full path's answer (issue 18).

Each shortcut is checked against what it replaced: the native reuse key joined once per parse against the
parameters the parser read; the memoised decision key against the SHA-256 it memoises; the allow answer built
once per token against ``json_response``; the origin-form shortcut against ``strip_authority``. Then, end to
end, a warm verifier (the token's decision remembered) against a fresh verification (``remember=False``) and
the HTTP answer against both, on valid, tampered and out-of-scope URLs; and a key revoked, a principal
disabled, an item's links revoked or a grant revoked between two requests refuses the second.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.http_writer import _serialize_headers
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from gateway.errors import VerificationFailed
from gateway.model import Permission, PrincipalKind, Visibility
from gateway.signing import path_tokens
from gateway.signing.dialects import native
from gateway.signing.dialects._common import split_url
from gateway.signing.dialects.base import Redemption
from gateway.signing.dialects.native import NativeDialect, params_text
from gateway.signing.paths import path_problem, split_query, strip_authority
from gateway.signing.verification import Accepted, Decisions, _token_key
from gateway.web.middleware import json_response
from gateway.web.schemas import VerifyAllowed
from gateway.web.verify import _allow_parts, path_and_query
from tests.support import ADMIN, World

BASE = "https://cdn.example.com"
CLIENT = "127.0.0.1"  # the test client's address: a trusted proxy, so X-Original-URI is read
SHARED = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# What a URL's pieces are drawn from: the characters paths, queries and tokens use, and the ones that break them.
_PIECES = st.sampled_from(
    ["a", "Z", "0", "9", "-", "_", ".", "~", "/", "%", "%2F", "%41", "?", "&", "=", "#", "+", ";", "\\", " ", "gw_",
     "gw_pfx=", "gw_kid=", "..", "/_t/", "\u00e9", "\x00", "\x7f"]
)  # fmt: skip
_TEXT = st.lists(_PIECES, max_size=12).map("".join)


def _old_parse(url: str) -> tuple[str, list[tuple[str, str]], dict[str, str], bool]:
    """The native parser as it was before its query part was memoised: (path, other pairs, gw_ parameters, in
    the path), or VerificationFailed."""
    parts = split_url(url)
    path = parts.path or "/"
    if path_problem(path) is not None:
        raise VerificationFailed("non-canonical-path")
    params: dict[str, str] = {}
    others: list[tuple[str, str]] = []
    for name, value in split_query(parts.query):
        if name.startswith("gw_"):
            native._add_param(params, name, value)
        else:
            others.append((name, value))
    in_path = path_tokens.split(path)
    if in_path is None:
        native._require(params)
        return path, others, params, False
    if params:
        raise VerificationFailed("malformed")
    segment, rest = in_path
    return rest, others, native.token_params(segment), True


def _old_reuse_key(url: str) -> str | None:
    """The reuse key as it was computed before the memos: the parsed gw_ parameters, joined per call (in the
    spec's order, as the signer writes them: one key per token however its parameters were ordered)."""
    try:
        params = _old_parse(url)[2]
    except VerificationFailed:
        return None
    if "gw_pfx" not in params:
        return None
    return params_text(params)


def _parsed(url: str, parse: Any = None) -> tuple[str, object]:
    """What the native parser (or ``parse``) makes of ``url``: its path, other pairs, gw_ parameters and form."""
    try:
        if parse is not None:
            return "parsed", parse(url)
        token = NativeDialect._parse(url)
    except VerificationFailed as refused:
        return "refused", refused.reason
    return "parsed", (token.path, token.query, token.params, token.in_path)


def _old_path_and_query(uri: str) -> str:
    if not uri.isascii() or not uri.isprintable() or "#" in uri:
        raise VerificationFailed("malformed")
    origin_form = strip_authority(uri)
    if not origin_form.startswith("/"):
        raise VerificationFailed("non-canonical-path")
    return origin_form


def _outcome(call: Any, *args: Any) -> tuple[str, object]:
    try:
        return "allow", call(*args)
    except VerificationFailed as refused:
        return "deny", refused.reason


async def _prefix_url(world: World, client: TestClient, principal: str = "web", scope: str = "prefix") -> str:
    """A prefix token for /v/m1/ (``scope="prefix-token"``: in the path; ``"path"``: a URL for the playlist alone),
    as issued, origin-form."""
    if principal not in world.seeds:
        await world.principal(principal, Permission.SIGN, Permission.SIGN_ON_BEHALF)
    if await world.services.store.media.get("m1") is None:
        await world.media("m1")
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "alice"}, "scope": scope.removesuffix("-token")}
    if scope == "prefix-token":  # the prefix token as the path's first segment (/_t/<token>/...)
        body["form"] = "path"
    response = await client.post("/v1/sign", json=body, headers=world.auth(principal))
    assert response.status == 200, await response.text()
    return str((await response.json())["url"]).removeprefix(BASE)


def _variant(uri: str, path: str, edit: tuple[str, int, str]) -> str:
    """``uri`` for another path, its query (or its path token) edited: ``(kind, position, text)``."""
    if uri.startswith(path_tokens.MARKER):  # /_t/<token>/<path>: the token edited, the path after it replaced
        token = uri.split("/")[2]
        return path_tokens.join(_edited(token, edit), path) if path.startswith("/") else path
    return f"{path}?{_edited(uri.split('?', 1)[1], edit)}"


def _edited(query: str, edit: tuple[str, int, str]) -> str:
    kind, position, text = edit
    at = position % (len(query) + 1)
    pairs = query.split("&")
    if kind == "insert":
        query = query[:at] + text + query[at:]
    elif kind == "replace":
        query = query[:at] + text + query[at + 1 :]
    elif kind == "drop":
        query = "&".join(pairs[: at % len(pairs)] + pairs[at % len(pairs) + 1 :])
    elif kind == "swap":
        i = at % len(pairs)
        pairs[i], pairs[i - 1] = pairs[i - 1], pairs[i]
        query = "&".join(pairs)
    elif kind == "repeat":
        query = query + "&" + pairs[at % len(pairs)]
    return query


_SEGMENTS = st.sampled_from(["/v/m1/master.m3u8", "/v/m1/seg1.ts", "/v/m1/seg2.ts"])
_ODD_PATHS = [
    "/v/m1/", "/v/m1", "/v/m1x/seg.ts", "/v/m2/seg.ts", "/v/m1/../m2/x.ts", "/v/m1//x.ts", "/v/m1/%2e%2e/x.ts",
    "/v/m1/%41.ts", "/v/m1/sub/deep/x.ts", "/_t/abc/v/m1/x.ts", "v/m1/x.ts", "/V/m1/x.ts", "/v/m1/x.ts;a",
]  # fmt: skip
_PATHS = st.one_of(
    _SEGMENTS,
    _SEGMENTS,  # twice: most requests are for a segment
    st.integers(0, 3).map(lambda n: f"/_t/x/v/m1/seg{n}.ts"),
    st.sampled_from(_ODD_PATHS),
    _TEXT.map(lambda text: "/v/m1/" + text),
)
_KINDS = ["none", "none", "none", "insert", "replace", "drop", "swap", "repeat"]  # mostly the URL as issued
_INSERTED = ["x", "A", "0", "&", "&&", "=", "%", "#", "&junk=1", "&gw_ip=1.2.3.4", "gw_"]
_EDITS = st.tuples(st.sampled_from(_KINDS), st.integers(0, 400), st.sampled_from(_INSERTED))


@settings(max_examples=300, deadline=None)
@given(head=st.sampled_from(["", BASE, "http://other.example"]), path=_PATHS, tail=_TEXT)
def test_the_parse_and_reuse_key_are_as_before_the_memos(head: str, path: str, tail: str) -> None:
    for query in ("gw_exp=1800000600&gw_iat=1800000000&gw_pfx=/v/m1/&gw_kid=gwk_a&gw_sig=AAAA",
                  "gw_exp=1800000600&gw_iat=1800000000&gw_kid=gwk_a&gw_sig=AAAA"):  # fmt: skip
        for url in (f"{head}{path}?{query}{tail}", f"{head}{path}?{tail}{query}", f"{head}{path}{tail}"):
            assert NativeDialect().reuse_key(Redemption(url, 0)) == _old_reuse_key(url)
            assert _parsed(url) == _parsed(url, _old_parse)


@settings(SHARED, max_examples=200)
@given(token=st.text(max_size=700), client_ip=st.sampled_from([None, "198.51.100.7", "2001:db8::1"]))
def test_a_memoised_decision_key_is_the_digest_it_memoises(world: World, token: str, client_ip: str | None) -> None:
    profile = world.services.profiles.get(None)
    redemption = Redemption("https://cdn.example.com/v/m1/x.ts", 0, client_ip)
    before = _token_key.cache_info().currsize
    assert Decisions.key(redemption, profile, token, reusable=True) == Decisions.key(redemption, profile, token)
    if len(token) > 512:  # a client's long "token" is keyed afresh: it never sits in the memo
        assert _token_key.cache_info().currsize == before


@pytest.mark.parametrize(("length", "memoised"), [(512, True), (513, False), (8000, False)])
def test_only_a_short_token_s_key_is_memoised(world: World, length: int, memoised: bool) -> None:
    """The memo's bound in memory: 4096 keys of at most 512 characters, whatever a client pads its URLs with."""
    _token_key.cache_clear()
    profile, redemption = world.services.profiles.get(None), Redemption(f"{BASE}/v/m1/x.ts", 0, "198.51.100.7")
    token = "x" * length
    assert Decisions.key(redemption, profile, token, reusable=True) == Decisions.key(redemption, profile, token)
    assert _token_key.cache_info().currsize == (1 if memoised else 0)


@settings(max_examples=100, deadline=None)
@given(kid=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30),
       principal=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30),
       expires=st.integers(0, 2**53))  # fmt: skip
def test_the_allow_answer_is_the_one_json_response_writes(kid: str, principal: str, expires: int) -> None:
    expected = json_response(
        VerifyAllowed(status="allow", kid=kid, expires_at=expires),
        headers={"X-Gateway-Kid": kid, "X-Gateway-Principal": principal},
    )
    body, headers, fixed = _allow_parts(kid, principal, expires)
    assert body == expected.body
    assert list(headers.items()) == list(expected.headers.items())  # in order: `curl -i` in the README shows it
    # The bytes written below web.Response (gateway.web.fixed) start as aiohttp serialises those headers.
    assert fixed is not None and fixed.body == body
    assert fixed.head == _serialize_headers("HTTP/1.1 200 OK", headers)[:-2] + b"X-Request-Id: "
    assert fixed.length == f"\r\nContent-Length: {len(body)}\r\nDate: ".encode()


@pytest.mark.parametrize("principal", ["caf\u00e9", "a\tb", "a\x7fb"])
def test_an_allow_with_a_header_value_not_printable_ascii_is_not_fixed(principal: str) -> None:
    """web.Response then spells (or refuses) it: the fixed bytes are only ever the plain case."""
    assert _allow_parts("gwk_a", principal, 1)[2] is None


@settings(max_examples=300, deadline=None)
@given(head=st.sampled_from(["", "https://cdn.example.com", "HTTP://x:1", "a+b.c-d://h", "1http://h", "//h"]),
       text=_TEXT)  # fmt: skip
def test_the_origin_form_shortcut_is_strip_authority(head: str, text: str) -> None:
    uri = head + text
    assert _outcome(path_and_query, uri) == _outcome(_old_path_and_query, uri)


@SHARED
@given(path=_PATHS, edit=_EDITS, later=st.sampled_from([0, 30, 359, 360, 3600]),
       client_ip=st.sampled_from([CLIENT, "198.51.100.7"]),
       scope=st.sampled_from(["prefix", "path", "prefix-token"]))  # fmt: skip
async def test_a_remembered_decision_answers_as_a_fresh_verification(
    world: World, client: TestClient, path: str, edit: tuple[str, int, str], later: int, client_ip: str, scope: str
) -> None:
    uri = await _fixed_url(world, client, scope)
    services = world.services
    profile = services.profiles.get(None)
    await services.verifier.verify(Redemption(BASE + uri, world.clock(), client_ip), profile)  # remembered now
    at = world.clock() + later
    for presented in (uri, _variant(uri, path, edit)):  # the URL as issued, at that time, and a variant of it
        fresh = await _settled(services.verifier.verify(Redemption(BASE + presented, at, client_ip), profile,
                                                        remember=False))  # fmt: skip
        hits = services.verifier.decisions.hits
        warm = await _settled(services.verifier.verify(Redemption(BASE + presented, at, client_ip), profile))
        event(f"{scope}: {fresh[0]} {fresh[1] if fresh[0] == 'deny' else ''}")
        assert warm == fresh
        if presented == uri and fresh[0] == "allow":
            assert services.verifier.decisions.hits == hits + 1  # it was the remembered decision that answered


@SHARED
@given(path=_PATHS, edit=_EDITS)
async def test_the_http_answer_is_a_fresh_verification_s(
    world: World, client: TestClient, path: str, edit: tuple[str, int, str]
) -> None:
    uri = await _fixed_url(world, client, "prefix")
    services = world.services
    assert (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status == 200  # remembered now
    presented = _variant(uri, path, edit)
    assume(presented.isascii() and presented.isprintable())  # the HTTP client refuses to send anything else
    try:
        url = BASE + _old_path_and_query(presented)
        fresh = await _settled(services.verifier.verify(Redemption(url, world.clock(), CLIENT),
                                                        services.profiles.get(None), remember=False))  # fmt: skip
    except VerificationFailed:
        fresh = ("deny", "malformed")
    response = await client.get("/v1/verify", headers={"X-Original-URI": presented})
    event(f"{fresh[0]} {fresh[1] if fresh[0] == 'deny' else ''}")
    assert response.status == (200 if fresh[0] == "allow" else 403)
    if fresh[0] == "allow":
        assert isinstance(fresh[1], Accepted)
        assert await response.json() == {"status": "allow", "kid": fresh[1].kid, "expires_at": fresh[1].expires}
        assert (response.headers["X-Gateway-Kid"], response.headers["X-Gateway-Principal"]) == (fresh[1].kid, "web")
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"


async def _settled(pending: Any) -> tuple[str, object]:
    try:
        return "allow", await pending
    except VerificationFailed as refused:
        return "deny", refused.reason


_ISSUED: dict[tuple[int, str], str] = {}


async def _fixed_url(world: World, client: TestClient, scope: str) -> str:
    """One URL per scope and test (hypothesis runs every example in the same world)."""
    if (id(world), scope) not in _ISSUED:
        for other in [key for key in _ISSUED if key[0] != id(world)]:
            del _ISSUED[other]
        _ISSUED[id(world), scope] = await _prefix_url(world, client, scope=scope)
    return _ISSUED[id(world), scope]


async def _status(client: TestClient, uri: str) -> int:
    return (await client.get("/v1/verify", headers={"X-Original-URI": uri})).status


@pytest.mark.parametrize("same_segment", [True, False])
async def test_a_key_revoked_between_two_requests_refuses_the_second(
    world: World, client: TestClient, same_segment: bool
) -> None:
    uri = await _prefix_url(world, client)
    first, second = uri.replace("master.m3u8", "seg1.ts"), uri.replace("master.m3u8", "seg1.ts" if same_segment
                                                                             else "seg2.ts")  # fmt: skip
    assert await _status(client, first) == 200
    kid = world.services.verifier.decisions.get(  # the remembered decision names the key
        Decisions.key(Redemption(BASE + first, 0, CLIENT), world.services.profiles.get(None),
                      NativeDialect().reuse_key(Redemption(BASE + first, 0)) or "", reusable=True), "/v/m1/seg1.ts",
    )  # fmt: skip
    assert kid is not None
    await world.services.admin.revoke_key(ADMIN, kid.kid, "leaked", world.clock())
    assert await _status(client, second) == 403
    assert await _reason(world, second) == "key-revoked"


async def test_a_principal_disabled_between_two_requests_refuses_the_second(world: World, client: TestClient) -> None:
    uri = await _prefix_url(world, client)
    assert await _status(client, uri.replace("master.m3u8", "seg1.ts")) == 200
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    assert await _status(client, uri.replace("master.m3u8", "seg2.ts")) == 403
    assert await _reason(world, uri.replace("master.m3u8", "seg2.ts")) == "principal-disabled"


async def test_links_revoked_between_two_requests_refuse_the_second(world: World, client: TestClient) -> None:
    uri = await _prefix_url(world, client)
    assert await _status(client, uri.replace("master.m3u8", "seg1.ts")) == 200
    world.clock.advance(1)
    await world.services.admin.revoke_links(ADMIN, "m1", "leaked playlist", world.clock())
    assert await _status(client, uri.replace("master.m3u8", "seg1.ts")) == 403
    assert await _reason(world, uri.replace("master.m3u8", "seg2.ts")) == "links-revoked"


async def test_a_grant_revoked_between_two_requests_refuses_the_second(world: World, client: TestClient) -> None:
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.media("m1", owner="alice", visibility=Visibility.PRIVATE)
    grant = await world.services.admin.add_grant(ADMIN, "eve", "m1", "incident 7", 3600, world.clock())
    body = {"media_id": "m1", "rendition": "video", "scope": "prefix"}
    response = await client.post("/v1/sign", json=body, headers=world.auth("eve"))
    uri = str((await response.json())["url"]).removeprefix(BASE)
    assert await _status(client, uri.replace("master.m3u8", "seg1.ts")) == 200
    world.clock.advance(5)
    await world.services.admin.revoke_grant(ADMIN, grant.id, world.clock())
    assert await _status(client, uri.replace("master.m3u8", "seg2.ts")) == 403
    assert await _reason(world, uri.replace("master.m3u8", "seg2.ts")) == "grant-revoked"


async def _reason(world: World, uri: str) -> str:
    """Why the (warm) verifier refuses ``uri`` now."""
    with pytest.raises(VerificationFailed) as refused:
        await world.services.verifier.verify(Redemption(BASE + uri, world.clock(), CLIENT),
                                             world.services.profiles.get(None))  # fmt: skip
    return refused.value.reason
