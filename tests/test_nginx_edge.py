"""Edge mode against real nginx (Debian's nginx-core + libnginx-mod-http-lua): deploy/nginx/media-gateway-edge.conf
in front of a real ``gatewayctl serve`` over mutual TLS, beside the default auth_request site (the reference).

- differential: every URL of one corpus — the attack spellings of tests/security (path escapes, path-token
  spellings), number and parameter spellings, seeded mutations of valid URLs, and valid URLs in every form —
  gets the same status through the edge as through auth_request, request by request;
- revocation (key, principal, links, grant) stops the next request through the edge once its state has the
  change, with the gateway's exact reason;
- a stopped feed denies (state-stale) and the edge serves again when it returns, without a reload;
- a state zone too small denies everything (state-full), never evicting;
- redemptions reach the gateway's audit log.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from examples.demo import stack as local
from gateway.audit.records import url_digest
from tests.edge_stack import EdgeStack, Principal, require_lua, running
from tests.nginx_server import nginx_binary
from tests.nginx_site import NONE_SEEN, OVERRIDES, fetch, origin_requests, overrides_seen, require_tool
from tests.processes import wait_until
from tests.security.test_path_escape import ESCAPES
from tests.security.test_path_token_spellings import attacks

pytestmark = pytest.mark.e2e
FILES = {
    "v/a/master.m3u8": b"#EXTM3U\n",
    "v/a/seg-1.ts": b"segment one",
    "v/a/720p/seg-2.ts": b"segment two",
    "v/a/seg-reads.ts": b"read only",
    "v/a/seg-reads-sentinel.ts": b"after the reads",  # the origin test's own
    "v/ab/master.m3u8": b"a sibling",
    "v/other/master.m3u8": b"PRIVATE",
    "v/m1/master.m3u8": b"alice's private video",
    "v/gone/master.m3u8": b"to be revoked",
    "v/gone/seg-1.ts": b"to be revoked",
}
SEGMENTS = ("master.m3u8", "seg-1.ts", "720p/seg-2.ts", "seg-404.ts", "seg-1.ts?_HLS_msn=1")
VIEWER = {"viewer": {"id": "bob"}}


def _media(stack: local.Stack, media_id: str, *extra: str, visibility: str = "unlisted") -> None:
    stack.gatewayctl("media", "put", media_id, "--owner", "alice", "--workspace", "acme",
                     "--visibility", visibility, "--video", f"/v/{media_id}/master.m3u8", *extra)  # fmt: skip


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    require_lua()
    with running(tmp_path_factory.mktemp("edge"), FILES) as stack:
        for media_id in ("a", "ab", "gone"):
            _media(stack.stack, media_id)
        _media(stack.stack, "other", visibility="private")
        _media(stack.stack, "m1", visibility="private")
        yield stack


@pytest.fixture(scope="module")
def web(edge: EdgeStack) -> Principal:
    return Principal(edge.stack, "web", "--perm", "sign:on-behalf")


@pytest.fixture(scope="module")
def web2(edge: EdgeStack) -> Principal:
    """A second Ed25519 key, its URLs interleaved with web's: each must be checked with its own key."""
    return Principal(edge.stack, "web2", "--perm", "sign:on-behalf")


@pytest.fixture(scope="module")
def mac(edge: EdgeStack) -> Principal:
    return Principal(edge.stack, "mac", "--perm", "sign:on-behalf", algorithm="hmac-sha256")


# --- the corpus ------------------------------------------------------------------------------------


def _valid(principal: Principal) -> list[str]:
    """Every form a backend is handed: path scope, prefix query tokens, path tokens, bound to an address."""
    urls = [principal.url("a", **VIEWER), principal.url("a", **VIEWER, client_ip="127.0.0.1")]
    urls.append(principal.url("a", **VIEWER, client_ip="10.9.8.7"))  # bound to another network: wrong-ip
    prefix = principal.url("a", **VIEWER, scope="prefix")
    bound = principal.url("a", **VIEWER, scope="prefix", client_ip="127.0.0.1")
    path_token = principal.url("a", **VIEWER, scope="prefix", form="path")
    for segment in SEGMENTS:
        urls.append(_at(prefix, f"/v/a/{segment}"))
        urls.append(_at(bound, f"/v/a/{segment}"))
        urls.append(path_token.replace("/v/a/master.m3u8", f"/v/a/{segment}"))
    return urls


def _at(url: str, path: str) -> str:
    """A query token presented for another path (its query kept, after the path's own)."""
    query = url.split("?", 1)[1]
    return f"{path}&{query}" if "?" in path else f"{path}?{query}"


def _spellings(url: str) -> list[str]:
    """The same token in spellings only the signer's is accepted in, and with parameters added or doubled."""
    path, query = url.split("?", 1)
    exp = next(p for p in query.split("&") if p.startswith("gw_exp="))
    return [
        f"{path}?{query.replace(exp, exp.replace('=', '=0'))}",  # leading zero
        f"{path}?{query.replace(exp, exp.replace('=', '=+'))}",
        f"{path}?{query}&{exp}",  # doubled
        f"{path}?{query}&gw_x=1",  # unknown gw_ parameter
        f"{path}?{'&'.join(reversed(query.split('&')))}",  # another order (only the signer's counts)
        f"{path}?{query.replace('gw_sig=', 'gw_sig=A')}",
        f"{path}?{query}=",
        f"{path}?{query.replace('gw_pfx=/v/a/', 'gw_pfx=/v/')}",  # a wider prefix
        f"{path}?{query.replace('gw_pfx=/v/a/', 'gw_pfx=%2Fv%2Fa%2F')}",
        f"{path}?x=1&{query}",
        f"{path.upper()}?{query}",
    ]


def _attacks(prefix: str, path_token: str) -> list[str]:
    """tests/security: every path escape with a query prefix token and with a path token; the path-token attacks."""
    query = prefix.split("?", 1)[1]
    token = path_token.split("/")[2]
    urls = [f"{escape}?{query}" for escape in ESCAPES.values()]
    urls += [f"/_t/{token}{escape}" for escape in ESCAPES.values()]
    urls += [uri for uri, _ in attacks(token).values()]
    return urls + _spellings(prefix)


_ALPHABET = "%/._-~&=?;:@!$'()*+,0123456789abcdefABCDEF_gwtxyz"


def _mutations(urls: list[str], count: int, seed: str) -> list[str]:
    """Seeded fuzz: a character replaced, inserted or deleted, a segment doubled, an escape's case flipped."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        url = rng.choice(urls)
        at = rng.randrange(1, len(url))
        match rng.randrange(5):
            case 0:
                url = url[:at] + rng.choice(_ALPHABET) + url[at + 1 :]
            case 1:
                url = url[:at] + rng.choice(_ALPHABET) + url[at:]
            case 2:
                url = url[:at] + url[at + 1 :]
            case 3:
                segments = url.split("/")
                index = rng.randrange(1, len(segments))
                url = "/".join([*segments[:index], segments[index], *segments[index:]])
            case _:
                url = url[:at] + url[at:].swapcase()[:1] + url[at + 1 :]
        out.append(url if url.startswith("/") else "/" + url)
    return out


def _statuses(edge: EdgeStack, urls: list[str]) -> list[tuple[str, int, int]]:
    return list(zip(urls, edge.statuses(edge.edge, urls), edge.statuses(edge.reference, urls), strict=True))


@pytest.mark.timeout(900)  # the stack's start is in it, on a machine that may be busy
def test_edge_and_auth_request_agree_on_every_url_of_the_corpus(
    edge: EdgeStack, web: Principal, web2: Principal, mac: Principal
) -> None:
    valid = [url for urls in zip(_valid(web), _valid(web2), _valid(mac), strict=True) for url in urls]
    prefix = web.url("a", **VIEWER, scope="prefix")
    path_token = web.url("a", **VIEWER, scope="prefix", form="path")
    corpus = valid + _attacks(prefix, path_token) + _mutations(valid, 400, "edge-differential")
    before = edge.status()
    answers = _statuses(edge, corpus)
    after = edge.status()
    differ = [(url, ours, theirs) for url, ours, theirs in answers if ours != theirs]
    assert differ == []
    allowed = sum(1 for _, ours, _ in answers if ours in (200, 404))
    assert allowed >= 3 * 3 * len(SEGMENTS)  # the valid ones: each principal's prefix tokens, at least
    # The edge decided every valid URL itself, and asked the gateway about the rest of what reached a media
    # location (a few mutations are refused by nginx's parser or land outside /v/ and /_t/, unchecked: 400, 404).
    decided = (after["allowed"] - before["allowed"]) + (after["denied"] - before["denied"])
    asked = after["asked"] - before["asked"]
    assert decided >= len(valid) and len(corpus) - 20 <= decided + asked <= len(corpus)


def test_valid_urls_are_decided_by_the_edge_and_never_asked(edge: EdgeStack, web: Principal, mac: Principal) -> None:
    urls = _valid(web) + _valid(mac)
    before = edge.status()
    assert {edge.get(edge.edge, url) for url in urls} == {200, 403, 404}
    after = edge.status()
    assert after["asked"] == before["asked"]
    denied = {reason: count - before["denied_by_reason"][reason] for reason, count in after["denied_by_reason"].items()}
    assert {reason: count for reason, count in denied.items() if count} == {"wrong-ip": 2}


# --- revocation --------------------------------------------------------------------------------------


def _refused_after(edge: EdgeStack, url: str, change: Any, reason: str) -> None:
    """``url`` is served; ``change()`` (a gatewayctl command); once the edge has the change, refused for ``reason``."""
    assert edge.get(edge.edge, url) == 200
    version = edge.status()["version"]
    change()
    edge.wait_past(version)
    before = edge.status()["denied_by_reason"][reason]
    assert edge.get(edge.edge, url) == 403
    assert edge.status()["denied_by_reason"][reason] == before + 1
    assert edge.get(edge.reference, url) == 403


def test_a_key_revocation_stops_the_next_request_through_the_edge(edge: EdgeStack) -> None:
    principal = Principal(edge.stack, "revoked-key", "--perm", "sign:on-behalf")
    url = _at(principal.url("a", **VIEWER, scope="prefix"), "/v/a/seg-1.ts")
    _refused_after(edge, url, lambda: edge.stack.gatewayctl("keys", "revoke", principal.kid, "--reason", "leak"),
                   "key-revoked")  # fmt: skip


def test_a_disabled_principal_stops_the_next_request_through_the_edge(edge: EdgeStack) -> None:
    principal = Principal(edge.stack, "disabled", "--perm", "sign:on-behalf")
    url = principal.url("a", **VIEWER, scope="prefix", form="path").replace("master.m3u8", "seg-1.ts")
    _refused_after(edge, url, lambda: edge.stack.gatewayctl("principals", "disable", principal.name),
                   "principal-disabled")  # fmt: skip


def test_a_link_revocation_stops_the_next_request_through_the_edge(edge: EdgeStack, web: Principal) -> None:
    url = web.url("gone", **VIEWER, scope="prefix", form="path").replace("master.m3u8", "seg-1.ts")
    _refused_after(edge, url, lambda: edge.stack.gatewayctl("media", "revoke-links", "gone", "--reason", "leak"),
                   "links-revoked")  # fmt: skip


def test_a_grant_revocation_stops_the_next_request_through_the_edge(edge: EdgeStack) -> None:
    stack = edge.stack
    engineer = Principal(stack, "eve", "--kind", "engineer")
    grant = stack.gatewayctl("grants", "add", "--principal", "eve", "--media", "m1", "--reason", "incident 7")
    url = engineer.url("m1", scope="prefix")
    _refused_after(edge, url, lambda: stack.gatewayctl("grants", "revoke", grant["id"]),
                   "grant-revoked")  # fmt: skip


# --- the feed --------------------------------------------------------------------------------------


@contextmanager
def _gateway_paused(edge: EdgeStack) -> Iterator[None]:
    """SIGSTOP the stack's own gateway process (found by its data directory): the feed stops answering."""
    data_dir = str(edge.stack.layout.data_dir)
    found = subprocess.run(["pgrep", "-f", f"serve --data-dir {data_dir}$"], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    assert len(pids) == 1, found
    os.kill(pids[0], signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pids[0], signal.SIGCONT)


def test_a_stopped_feed_denies_and_the_edge_recovers_without_a_reload(edge: EdgeStack, web: Principal) -> None:
    url = _at(web.url("a", **VIEWER, scope="prefix"), "/v/a/seg-1.ts")
    assert edge.get(edge.edge, url) == 200
    nginx_pid = (edge.stack.layout.nginx_dir / "nginx.pid").read_text()
    with _gateway_paused(edge):
        stale = edge.wait_for("stale state", lambda s: not s["fresh"])
        assert edge.get(edge.edge, url) == 403
        assert edge.status()["denied_by_reason"]["state-stale"] > stale["denied_by_reason"]["state-stale"]
    edge.wait_fresh()
    assert edge.get(edge.edge, url) == 200
    assert (edge.stack.layout.nginx_dir / "nginx.pid").read_text() == nginx_pid  # the same nginx: no reload
    log = (edge.stack.layout.nginx_dir / "logs" / "error.log").read_text()
    assert "media-gateway edge state is" in log and "s old (bound 2.0 s): denying" in log


def test_redemptions_reach_the_gateways_audit_log(edge: EdgeStack, web: Principal) -> None:
    """The first use of a token from a network is recorded (url:redeemed, as /v1/verify records it); repeats not."""
    url = web.url("ab", **VIEWER, scope="prefix", form="path")
    sent = edge.status()["redemptions_sent"]
    for segment in ("master.m3u8", "master.m3u8", "seg-404.ts"):
        edge.get(edge.edge, url.replace("master.m3u8", segment))
    edge.wait_for("the report sent", lambda s: s["redemptions_sent"] == sent + 1)  # one token, one network
    digest = url_digest(edge.stack.edge_url + url)
    deadline = time.monotonic() + 30  # the gateway writes redemptions behind, within a second

    def mine() -> list[dict[str, Any]]:
        records = edge.stack.gatewayctl("audit", "search", "--event", "url:redeemed", "--kid", web.kid)
        return [r for r in records if r["url_sha256"] == digest]

    while not mine() and time.monotonic() < deadline:
        time.sleep(0.1)
    found = [(r["client_ip"], r["actor"], r["detail"]) for r in mine()]
    assert found == [("127.0.0.0/24", "web", {"profile": "native"})]
    assert edge.status()["redemptions_dropped"] == 0


# --- monitoring ------------------------------------------------------------------------------------


def test_the_edge_counters_as_prometheus_metrics_match_its_status(edge: EdgeStack, web: Principal) -> None:
    """/_gateway_edge_metrics: promtool accepts it, and each figure is the status JSON's (a denial shows in both)."""
    promtool = require_tool("promtool", "apt-get install -y --no-install-recommends prometheus")
    url = _at(web.url("a", **VIEWER, scope="prefix"), "/v/a/seg-1.ts")
    assert edge.get(edge.edge, url.replace("gw_sig=", "gw_sig=A")) == 403  # bad-signature, counted
    status = edge.status()
    with urllib.request.urlopen(f"http://{local.LOOPBACK}:{edge.stack.ports.feed}/_gateway_edge_metrics") as answer:
        assert answer.headers["Content-Type"] == "text/plain; version=0.0.4"
        text = answer.read().decode()
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    figures = {name: float(value) for name, value in samples.items()}
    assert figures["media_gateway_edge_allowed_total"] == status["allowed"]
    assert figures['media_gateway_edge_denied_total{reason="bad-signature"}'] >= 1
    for reason, count in status["denied_by_reason"].items():
        assert figures[f'media_gateway_edge_denied_total{{reason="{reason}"}}'] >= count  # later reads only grow
    for reason, count in status["asked_by_reason"].items():
        assert figures[f'media_gateway_edge_asked_total{{reason="{reason}"}}'] >= count
    assert figures["media_gateway_edge_fresh"] == 1
    assert figures["media_gateway_edge_state_version"] >= status["version"]
    assert figures["media_gateway_edge_state_capacity_bytes"] == status["state_capacity_bytes"] == 16 * 1024 * 1024


# --- a state zone too small ------------------------------------------------------------------------


def test_a_full_state_zone_denies_everything_and_evicts_nothing(
    edge: EdgeStack, web: Principal, tmp_path: Path
) -> None:
    """A second edge nginx whose state zone (12k: the smallest nginx allows) cannot hold the state: every request
    denied (state-full), logged, counted; the state written with safe_set, so nothing was evicted to make room."""
    stack = edge.stack
    layout = local.Layout(tmp_path / "small")
    ports = local.Ports(local.free_port(), stack.ports.gateway, stack.ports.origin, local.free_port())
    site = local.site_files(layout, ports, stack.pki, edge=True)
    site.write_text(site.read_text().replace("media_gateway_edge_state 16m;", "media_gateway_edge_state 12k;"))
    conf = local.nginx_config(layout, ports, site, edge=True, origin=False)
    small = EdgeStack(local.Stack(layout, ports, stack.pki), edge.reference)
    url = _at(web.url("a", **VIEWER, scope="prefix"), "/v/a/seg-1.ts")
    with local.nginx_process(nginx_binary(), conf, f"https://{local.LOOPBACK}:{ports.edge}", stack.client_context()):
        status = small.wait_for("a full state zone", lambda s: s["state_full_errors"] > 0)
        assert status["full"] is True and status["fresh"] is False
        assert small.get(small.edge, url) == 403
        assert small.status()["denied_by_reason"]["state-full"] >= 1
    assert "media-gateway edge state zone is full" in (layout.nginx_dir / "logs" / "error.log").read_text()
    assert edge.get(edge.edge, url) == 200  # the full-sized edge beside it serves


def test_a_state_zone_that_fills_up_later_denies_from_then_on(tmp_path: Path) -> None:
    """A 64k zone holds a fresh gateway's state at first: it serves; then 400 keys arrive in one change,
    the update does not fit, and from that moment every request is denied (state-full), the URL that was served
    included: a state that is partly written is never used."""
    require_lua()
    stack = local.prepare(tmp_path / "stack", signing=local.Signing(cache_window=0))
    for name in ("v/a/master.m3u8", "v/a/seg-1.ts"):
        (stack.layout.media_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (stack.layout.media_dir / name).write_bytes(FILES[name])
    site = local.site_files(stack.layout, stack.ports, stack.pki, edge=True)
    site.write_text(site.read_text().replace("media_gateway_edge_state 16m;", "media_gateway_edge_state 64k;"))
    conf = local.nginx_config(stack.layout, stack.ports, site, edge=True)
    context = stack.client_context()
    with (
        local.gateway_process(stack.layout, stack.gateway_url, context),
        local.nginx_process(nginx_binary(), conf, stack.edge_url, context),
    ):
        edge = EdgeStack(stack, reference="")
        edge.wait_fresh()
        _media(stack, "a")
        web = Principal(stack, "web", "--perm", "sign:on-behalf")
        url = _at(web.url("a", **VIEWER, scope="prefix"), "/v/a/seg-1.ts")
        assert edge.get(edge.edge, url) == 200, edge.status()
        assert edge.status()["state_full_errors"] == 0
        asyncio.run(_many_keys(stack.layout.data_dir / "gateway.db", 400))
        full = edge.wait_for("a full state zone", lambda s: s["state_full_errors"] > 0)
        assert (full["full"], full["fresh"]) == (True, False)
        assert edge.get(edge.edge, url) == 403
        assert edge.status()["denied_by_reason"]["state-full"] >= 1
    assert "media-gateway edge state zone is full" in (stack.layout.nginx_dir / "logs" / "error.log").read_text()


async def _many_keys(database: Path, count: int) -> None:
    """``count`` principals with a key each, committed as one change set by another process."""
    from gateway.model import KeyAlgorithm, Permission, PrincipalKind, SigningKey
    from gateway.model import Principal as Row
    from gateway.store.sqlite import SqliteStore

    store = await SqliteStore.open(database)
    try:
        async with store.transaction() as tx:
            for i in range(count):
                await tx.principals.add(Row(f"bulk{i}", PrincipalKind.SERVICE, frozenset({Permission.SIGN}), 1.0))
                await tx.keys.add(SigningKey(f"gwk_bulk{i:020d}", f"bulk{i}", KeyAlgorithm.ED25519, b"s", 1.0,
                                             secrets.token_bytes(32)))  # fmt: skip
    finally:
        await store.close()


# --- a signed URL reads ------------------------------------------------------------------------------


def test_a_valid_url_carries_no_write_to_the_origin_through_the_edge(edge: EdgeStack, web: Principal) -> None:
    """Only GET and HEAD pass; no override header, no body, and no query (not signed by a prefix or path token:
    an object store's versionId or response-content-type) reach the origin. Files of this test's own."""
    url = _at(web.url("a", **VIEWER, scope="prefix", ttl=131), "/v/a/seg-reads.ts")
    path_token = web.url("a", **VIEWER, scope="prefix", form="path").replace("master.m3u8", "seg-reads.ts")
    methods = ("DELETE", "PUT", "POST", "PROPFIND", "PATCH", "OPTIONS")
    before = edge.status()
    for method in methods:
        for target in (url, path_token):
            assert fetch(edge.edge + target, edge.stack.client_context(), method=method)[0] == 405, (method, target)
    assert fetch(edge.edge + url, edge.stack.client_context(), method="HEAD")[0] == 200
    assert fetch(edge.edge + url, edge.stack.client_context(), headers=OVERRIDES)[0] == 200
    assert fetch(edge.edge + url, edge.stack.client_context(), body=b"PUT / HTTP/1.1\r\n\r\n")[0] == 200
    for target in (url, path_token + "?"):
        assert edge.get(edge.edge, target + "&versionId=3&response-content-type=text%2Fhtml") == 200, target
    after = edge.status()
    assert after["denied_by_reason"]["method-not-allowed"] - before["denied_by_reason"]["method-not-allowed"] == 12
    assert after["asked"] == before["asked"]  # decided at the edge, before anything else
    sentinel = _at(web.url("a", **VIEWER, scope="prefix", ttl=137), "/v/a/seg-reads-sentinel.ts")
    origin_log = edge.stack.layout.nginx_dir / "logs" / "origin.log"
    lines = origin_requests(origin_log, edge.stack.client_context(), edge.edge + sentinel, "seg-reads-sentinel.ts")
    reads = [line for line in lines if "/seg-reads.ts" in line]
    assert reads == [f"{m} /v/a/seg-reads.ts HTTP/1.1" for m in ("HEAD", "GET", "GET", "GET", "GET")], lines
    assert overrides_seen(origin_log, "/seg-reads.ts ") == [NONE_SEEN] * 5  # no override header, no body


def _loopback(edge: EdgeStack, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
    url = f"http://{local.LOOPBACK}:{edge.stack.ports.feed}{path}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_no_other_process_borrows_nginxs_certificate_through_the_loopback_server(
    edge: EdgeStack, mac: Principal
) -> None:
    """The loopback server adds nginx's client certificate to what it forwards to the feed (HMAC secrets
    included): only this nginx's own timers, which hold a key made at start-up, get through it."""
    report = json.dumps({"redemptions": []}).encode()
    for headers in ({}, {"X-Gateway-Edge-Key": "0" * 64}, {"X-Gateway-Edge-Key": ""}):
        assert _loopback(edge, "/_gateway_edge/state", headers)[0] == 403
        assert (
            _loopback(edge, "/_gateway_edge/redemptions", {**headers, "Content-Type": "application/json"}, report)[0]
            == 403
        )
    # The timers still get through: the edge decides an HMAC key's URL itself, with the secret from the feed.
    url = mac.url("a", **VIEWER)

    def decided_at_the_edge() -> bool:
        before = edge.status()["asked"]
        return edge.get(edge.edge, url) == 200 and edge.status()["asked"] == before

    wait_until(decided_at_the_edge, "an HMAC URL decided by the edge with the secret the feed brought")


# --- the feed over a bearer token instead of mutual TLS ----------------------------------------------


def test_the_feed_and_the_reports_work_over_a_bearer_token_and_a_wrong_one_keeps_the_edge_closed(
    tmp_path: Path,
) -> None:
    """``[edge] token_file`` without ``mtls``: the Lua timers' ``token`` option is what the feed and the redemption
    reports are let in by (nginx still presents its certificate, which no longer counts). Another nginx with a
    wrong token never gets the state: it stays stale and denies."""
    require_lua()
    stack = local.prepare(tmp_path / "stack", signing=local.Signing(cache_window=0))
    for name in ("v/a/master.m3u8", "v/a/seg-1.ts"):
        (stack.layout.media_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (stack.layout.media_dir / name).write_bytes(FILES[name])
    token = secrets.token_urlsafe(32)
    token_file = stack.layout.data_dir / "keys" / "edge.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    config = stack.layout.data_dir / "gateway.toml"
    mtls = '[edge]\nmtls = true\nclient_names = ["nginx"]\nhmac_secrets = true\n'
    assert mtls in config.read_text()
    config.write_text(config.read_text().replace(mtls, '[edge]\ntoken_file = "keys/edge.token"\n'))
    binary = nginx_binary()
    with local.running(stack, binary, edge=True, feed_token=token):
        edge = EdgeStack(stack, reference="")
        edge.wait_fresh()
        _media(stack, "a")
        web = Principal(stack, "web", "--perm", "sign:on-behalf")
        url = _at(web.url("a", **VIEWER, scope="prefix"), "/v/a/seg-1.ts")
        before = edge.status()  # the key reached the edge ms after its commit; the URL took a gatewayctl run
        assert edge.get(edge.edge, url) == 200
        after = edge.wait_for("the report sent", lambda s: s["redemptions_sent"] == before["redemptions_sent"] + 1)
        assert (after["allowed"] - before["allowed"], after["asked"] - before["asked"]) == (1, 0)  # nginx decided

        wrong = local.Layout(tmp_path / "wrong")
        ports = local.Ports(local.free_port(), stack.ports.gateway, stack.ports.origin, local.free_port())
        site = local.site_files(wrong, ports, stack.pki, edge=True, feed_token="not-" + token)
        conf = local.nginx_config(wrong, ports, site, edge=True, origin=False)
        other = f"https://{local.LOOPBACK}:{ports.edge}"
        with local.nginx_process(binary, conf, other, stack.client_context()):
            closed = EdgeStack(local.Stack(wrong, ports, stack.pki), reference="")
            refused = closed.wait_for("a refused feed", lambda s: s["feed_failures"] >= 1)
            assert (refused["fresh"], refused.get("version")) == (False, None)  # never had any state
            assert closed.get(other, url) == 403
            assert closed.status()["denied_by_reason"]["state-stale"] >= 1
