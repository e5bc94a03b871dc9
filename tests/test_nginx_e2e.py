"""End to end: real nginx running deploy/nginx/media-gateway.conf, a real ``gatewayctl serve`` over
mutual TLS, and an origin, all on loopback (examples/demo/stack.py starts them).

page URL -> 302 -> bytes; tampered and expired URLs -> 403; ``gatewayctl keys revoke`` -> 403 within
the documented bound, with and without nginx's decision cache; a thumbnail-only principal cannot
fetch video; nginx trusts only the gateway's CA and the gateway answers /v1/verify only to nginx.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from examples.demo import stack as local
from examples.demo.pki import Authority, Pki
from gateway.config import load_config
from gateway.services import sync_policy
from tests.nginx_server import nginx_binary
from tests.nginx_site import NONE_SEEN, OVERRIDES, fetch, origin_requests, overrides_seen
from tests.processes import wait_until
from tests.tls_support import https

pytestmark = pytest.mark.e2e
# A real VOD playlist whose segment URLs are relative, as ffmpeg writes them: they resolve against the
# playlist's own URL (RFC 8216 4.1), so they keep a path token and lose a query token.
PLAYLIST = (
    b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    b"#EXTINF:1.000000,\nseg-000.ts\n#EXTINF:1.000000,\nseg-001.ts\n#EXTINF:1.000000,\n720p/seg-002.ts\n"
    b"#EXT-X-ENDLIST\n"
)
FILES = {
    "v/intro/master.m3u8": PLAYLIST,
    "v/intro/720p/seg-002.ts": b"segment two, 720p",
    "v/intro/seg-000.ts": b"segment zero",
    "t/intro.jpg": b"\xff\xd8 a thumbnail",
    "v/other/master.m3u8": b"someone else's video",
}
CACHE_TTL_BOUND = 1.0  # an answer is reused only within the second it was asked in (gateway-verify-cache.conf)
SLACK = 0.5  # the HTTP round trips of the check itself, on a busy machine
# gatewayctl with its imports done (they take most of a second): the command runs when told "go".
PRIMED = (
    "import sys; from gateway.cli.main import main; print('ready', flush=True);"
    " sys.exit(main(sys.argv[1:]) if sys.stdin.readline() == 'go\\n' else 0)"
)


def _stack(root: Path, decision_cache: bool) -> Iterator[local.Stack]:
    # No cache window: these tests time expiry and revocation to the second (tests/test_issuance_cache.py has it).
    stack = local.prepare(root, signing=local.Signing(cache_window=0))
    for name, body in FILES.items():
        path = stack.layout.media_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    for index in range(1, 200):  # fresh segment names: each one a question nginx has not cached
        (stack.layout.media_dir / "v" / "intro" / f"seg-{index:03d}.ts").write_bytes(b"segment %d" % index)
    with local.running(stack, nginx_binary(), decision_cache=decision_cache):
        stack.gatewayctl("media", "put", "intro", "--owner", "alice", "--workspace", "acme",
                         "--visibility", "workspace", "--video", "/v/intro/master.m3u8",
                         "--thumbnail", "/t/intro.jpg")  # fmt: skip
        yield stack


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.Stack]:
    yield from _stack(tmp_path_factory.mktemp("cached"), decision_cache=True)


@pytest.fixture(scope="module")
def uncached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.Stack]:
    yield from _stack(tmp_path_factory.mktemp("uncached"), decision_cache=False)


def _revocation_bound(stack: local.Stack) -> float:
    """The gateway's own bound: its state view's poll of the store (docs/replicas.md)."""
    return sync_policy(load_config(stack.layout.data_dir, environ={}), postgres=False).poll_every + SLACK


class Backend:
    """An application backend: a principal with its own key, calling /v1/sign with its client certificate."""

    def __init__(self, stack: local.Stack, name: str, *extra: str) -> None:
        self.stack = stack
        added = stack.gatewayctl("principals", "add", name, "--perm", "sign", "--perm", "sign:on-behalf", *extra)
        self.credential = added["credential_file"]
        self.kid = stack.gatewayctl("keys", "create", "--principal", name)["kid"]

    def sign(self, rendition: str = "video", **body: Any) -> tuple[int, dict[str, Any]]:
        token = self.stack.gatewayctl("token", "--credential", self.credential)["token"]
        request = {"media_id": "intro", "rendition": rendition, "viewer": {"id": "bob", "workspaces": ["acme"]}, **body}
        return https(self.stack.ports.gateway, self.stack.client_context("backend"), "/v1/sign", "POST",
                     {"Authorization": f"Bearer {token}"}, request)  # fmt: skip

    def url(self, rendition: str = "video", **body: Any) -> str:
        status, issued = self.sign(rendition, **body)
        assert status == 200, issued
        return str(issued["url"])

    def revoke(self) -> None:
        self.stack.gatewayctl("keys", "revoke", self.kid, "--reason", "e2e: revoked")


@contextmanager
def _primed_gatewayctl(stack: local.Stack, *argv: str) -> Iterator[Callable[[], None]]:
    """One ``gatewayctl`` command in a process started ahead of time; calling what this yields runs it.

    The operator's real command, in its own process; only its start-up is moved out of the timed part.
    """
    argv = (*argv, "--data-dir", str(stack.layout.data_dir), "--json")
    proc = subprocess.Popen([sys.executable, "-c", PRIMED, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip

    def go() -> None:
        out, err = proc.communicate("go\n", timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"gatewayctl {' '.join(argv)} exited {proc.returncode}: {err.strip()} {out.strip()}")

    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield go
    finally:
        if proc.returncode is None:  # never told to go: it does nothing
            proc.kill()
            proc.communicate()


def _status(stack: local.Stack, url: str) -> int:
    return fetch(url, stack.client_context())[0]


def _at(url: str, path: str) -> str:
    """The same token presented for another path."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(path=path).geturl()


# --- page URL -> 302 -> bytes -------------------------------------------------------------------


def test_a_page_url_redirects_to_a_signed_url_that_nginx_serves(cached: local.Stack) -> None:
    viewer = cached.gatewayctl("token", "--viewer", "bob", "--workspace", "acme")["token"]
    auth = {"Authorization": f"Bearer {viewer}"}
    for rendition, path in (("video", "/v/intro/master.m3u8"), ("thumbnail", "/t/intro.jpg")):
        status, headers, _ = fetch(f"{cached.edge_url}/m/intro/{rendition}", cached.client_context(), auth)
        assert (status, headers["Cache-Control"]) == (302, "no-store")
        location = headers["Location"]
        assert location.startswith(f"{cached.edge_url}{path}?gw_exp=")
        assert fetch(location, cached.client_context())[::2] == (200, FILES[path.lstrip("/")])
    status, _, body = fetch(f"{cached.edge_url}/m/intro/video", cached.client_context())
    assert (status, json.loads(body)["error"]) == (401, "unauthenticated")  # the gateway's answer, through nginx
    outsider = {"Authorization": f"Bearer {cached.gatewayctl('token', '--viewer', 'eve')['token']}"}
    status, _, body = fetch(f"{cached.edge_url}/m/intro/video", cached.client_context(), outsider)
    assert (status, json.loads(body)) == (404, {"error": "not_found", "message": "Not Found"})


def test_the_gateway_api_is_not_reachable_through_nginx(cached: local.Stack) -> None:
    for path in ("/v1/sign", "/v1/verify", "/v1/media/intro", "/openapi.json", "/_gateway_verify"):
        assert _status(cached, cached.edge_url + path) == 404, path


# --- tampered and expired ----------------------------------------------------------------------


def test_tampered_and_unsigned_urls_are_refused(cached: local.Stack) -> None:
    url = Backend(cached, "web-tamper").url(scope="prefix")
    assert fetch(_at(url, "/v/intro/seg-000.ts"), cached.client_context())[::2] == (200, b"segment zero")
    signature = url.rsplit("gw_sig=", 1)[1]
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    tampered = {
        "another directory": _at(url, "/v/other/master.m3u8"),
        "a sibling prefix": _at(url, "/v/intro2/master.m3u8"),
        "dot segments": _at(url, "/v/intro/../other/master.m3u8"),
        "later expiry": url.replace("gw_exp=", "gw_exp=1"),
        "another signature": url.replace(signature, flipped),
        "no signature": url.split("&gw_sig=")[0],
        "no token": url.split("?")[0],
    }
    assert {name: _status(cached, bad) for name, bad in tampered.items()} == dict.fromkeys(tampered, 403)


def test_an_expired_url_is_refused(cached: local.Stack) -> None:
    url = Backend(cached, "web-expiry").url(ttl=1)
    time.sleep(1.1 + CACHE_TTL_BOUND)  # past expiry; never asked before, so nothing of it is cached either
    assert _status(cached, url) == 403


# --- path tokens: /_t/<token>/v/intro/..., the segment taken off before the origin --------------


def _segments(playlist: bytes) -> list[str]:
    return [line for line in playlist.decode().splitlines() if line and not line.startswith("#")]


def test_a_path_token_reaches_every_relative_segment_of_a_real_playlist(cached: local.Stack) -> None:
    backend = Backend(cached, "web-path-token")
    url = backend.url(scope="prefix", form="path")
    token = url.split("/")[4]
    assert url == f"{cached.edge_url}/_t/{token}/v/intro/master.m3u8"
    status, _, playlist = fetch(url, cached.client_context())
    assert (status, playlist) == (200, PLAYLIST)  # the origin has no /_t/: nginx took the segment off
    for relative in _segments(playlist):
        segment = urllib.parse.urljoin(url, relative)  # what every HLS player does
        assert segment.startswith(f"{cached.edge_url}/_t/{token}/v/intro/"), segment
        on_disk = (cached.layout.media_dir / "v" / "intro" / relative).read_bytes()
        assert fetch(segment, cached.client_context())[::2] == (200, on_disk)
    query_form = backend.url(scope="prefix")  # the query token is lost on the way to a relative segment
    assert _status(cached, urllib.parse.urljoin(query_form, "seg-000.ts")) == 403
    backend.revoke()
    fresh = f"{cached.edge_url}/_t/{token}/v/intro/seg-{150:03d}.ts"  # never asked about: no cached answer
    assert _seconds_until_refused(cached, fresh, limit=_revocation_bound(cached)) <= _revocation_bound(cached)


def test_no_spelling_in_or_around_the_token_segment_gets_past_nginx(cached: local.Stack) -> None:
    backend = Backend(cached, "web-path-spellings")
    url = backend.url(scope="prefix", form="path")
    token, edge = url.split("/")[4], cached.edge_url
    query = backend.url(scope="prefix").split("?", 1)[1]
    assert _status(cached, f"{edge}/_t/{token}/v/intro/seg-001.ts") == 200
    attempts = {
        "dot-dot after the token": f"/_t/{token}/v/intro/../other/master.m3u8",
        "dot-dot right after the token": f"/_t/{token}/../v/other/master.m3u8",
        "encoded dot-dot": f"/_t/{token}/v/intro/%2e%2e/other/master.m3u8",
        "empty segment": f"/_t/{token}//v/intro/seg-001.ts",
        "escaped marker": f"/%5Ft/{token}/v/intro/seg-001.ts",
        "encoded slash": f"/_t/{token}%2Fv/intro/seg-001.ts",
        "doubled token segment": f"/_t/{token}/_t/{token}/v/intro/seg-001.ts",
        "another item's path": f"/_t/{token}/v/other/master.m3u8",
        "a sibling directory": f"/_t/{token}/v/intro2/master.m3u8",
        "no path after the token": f"/_t/{token}",
        "path and query token together": f"/_t/{token}/v/intro/seg-001.ts?{query}",
        "a made-up token": "/_t/Z3dfZXhwPTE/v/intro/seg-001.ts",
        "the path without its token": "/v/intro/seg-001.ts",
    }
    statuses = {name: _status(cached, edge + target) for name, target in attempts.items()}
    assert statuses == dict.fromkeys(attempts, 403)


# --- revocation ----------------------------------------------------------------------------------


def _seconds_until_refused(stack: local.Stack, url: str, limit: float) -> float:
    start = time.monotonic()
    while _status(stack, url) != 403:
        if time.monotonic() - start > limit:
            raise AssertionError(f"still served {limit:.2f} s after the revocation")
        time.sleep(0.01)
    return time.monotonic() - start


def test_without_the_decision_cache_a_revoked_key_is_refused_within_the_gateways_bound(
    uncached: local.Stack,
) -> None:
    backend = Backend(uncached, "web-revoke")
    url = _at(backend.url(scope="prefix"), "/v/intro/seg-000.ts")
    assert _status(uncached, url) == 200
    backend.revoke()  # gatewayctl keys revoke: another process, writing the store the server polls
    assert _seconds_until_refused(uncached, url, limit=_revocation_bound(uncached)) <= _revocation_bound(uncached)
    assert _status(uncached, _at(url, "/v/intro/seg-001.ts")) == 403


def _just_after_a_second() -> None:
    """An answer stored just after a second begins is the one kept longest: almost the whole second."""
    time.sleep(1 - time.time() % 1 + 0.02)


def _answers_until_refused(stack: local.Stack, url: str, limit: float) -> list[tuple[float, int]]:
    """Ask for ``url`` until it is refused: each request's wall-clock start (nginx's clock) and status."""
    answers: list[tuple[float, int]] = []
    deadline = time.time() + limit
    while not answers or answers[-1][1] != 403:
        if time.time() > deadline:
            raise AssertionError(f"still served {limit:.2f} s after the revocation: {answers}")
        started = time.time()
        answers.append((started, _status(stack, url)))
        time.sleep(0.01)
    return answers


def test_with_the_decision_cache_a_revoked_url_already_asked_about_is_refused_within_1_s(
    cached: local.Stack,
) -> None:
    """The documented cost of the cache (deploy/nginx/gateway-verify-cache.conf), and its bound, measured."""
    for attempt in range(5):  # the demonstration needs the revocation to land while the answer is kept (a loaded
        # machine can take longer than the second to revoke: try again)
        backend = Backend(cached, f"web-cache-{attempt}")
        prefix = backend.url(scope="prefix")
        asked = _at(prefix, f"/v/intro/seg-{10 + attempt:03d}.ts")
        with _primed_gatewayctl(cached, "keys", "revoke", backend.kid, "--reason", "e2e: revoked") as revoke:
            _just_after_a_second()
            assert _status(cached, asked) == 200  # the answer nginx keeps
            decided = time.time()  # the gateway decided before this
            revoke()
        # The gateway knows at once: a URL nobody asked about yet is refused.
        fresh = _at(prefix, f"/v/intro/seg-{100 + attempt:03d}.ts")
        assert _seconds_until_refused(cached, fresh, limit=_revocation_bound(cached)) <= _revocation_bound(cached)
        answers = _answers_until_refused(cached, asked, limit=CACHE_TTL_BOUND + SLACK)
        served = [started for started, status in answers if status == 200]  # all of them after the revocation
        # The bound: no request that began 1 s or more after the decision was answered with it.
        assert all(started < decided + CACHE_TTL_BOUND for started in served), (decided, answers)
        if served:  # the cost: served from nginx's memory after its key was revoked
            break
    assert served, "the revocation never landed within the second of the kept answer"


def test_the_decision_cache_never_answers_one_question_with_anothers_answer(cached: local.Stack) -> None:
    """The key holds the path (prefix tokens) and the client address (IP-bound URLs): right after an allow,
    the same token for another directory, or from another client, is still asked about and refused."""
    backend = Backend(cached, "web-cache-key")
    url = backend.url(scope="prefix", client_ip="127.0.0.1")
    _just_after_a_second()  # all of it within the second the first answer is kept for
    assert _status(cached, url) == 200  # kept by nginx for the rest of this second
    assert _status(cached, _at(url, "/v/other/master.m3u8")) == 403
    # Another viewer: nginx's peer is loopback, which the gateway trusts to forward the client's address.
    status, _, _ = fetch(url, cached.client_context(), {"X-Forwarded-For": "198.51.100.7"})
    assert status == 403
    assert _status(cached, url) == 200


# --- authorisation, through nginx ---------------------------------------------------------------


def test_a_thumbnail_only_principal_cannot_fetch_video(cached: local.Stack) -> None:
    robot = Backend(cached, "thumbnailer", "--rendition", "thumbnail")
    status, refusal = robot.sign("video")
    assert (status, refusal["error"]) == (403, "forbidden")
    thumbnail = robot.url("thumbnail")
    assert fetch(thumbnail, cached.client_context())[::2] == (200, FILES["t/intro.jpg"])
    assert _status(cached, _at(thumbnail, "/v/intro/master.m3u8")) == 403


# --- mutual TLS between nginx and the gateway -----------------------------------------------------


def test_only_nginx_may_ask_the_gateway_and_nginx_asks_only_the_gateway(cached: local.Stack, tmp_path: Path) -> None:
    url = Backend(cached, "web-mtls").url(scope="prefix")
    uri = url.removeprefix(cached.edge_url)
    port = cached.ports.gateway
    # Someone else on the network, even with the gateway's CA trusted, has no client certificate.
    assert https(port, cached.client_context(), "/v1/verify", headers={"X-Original-URI": uri})[1]["error"] == (
        "client_certificate_required"
    )
    assert https(port, cached.client_context("proxy"), "/v1/verify", headers={"X-Original-URI": uri})[0] == 200
    # An nginx that trusts another CA takes the real gateway for an impostor: no answer, no media.
    impostor = _pki_trusting_another_ca(cached.pki, tmp_path / "pki")
    layout = local.Layout(tmp_path)
    ports = local.Ports(local.free_port(), cached.ports.gateway, local.free_port())  # its own origin: never reached
    site = local.site_files(layout, ports, impostor)
    with ExitStack() as running:
        edge = f"https://127.0.0.1:{ports.edge}"
        running.enter_context(local.nginx_process(nginx_binary(), local.nginx_config(layout, ports, site), edge,
                                                  cached.client_context()))  # fmt: skip
        assert fetch(edge + uri, cached.client_context())[0] == 500  # auth_request could not ask: fail closed
    assert "upstream SSL certificate verify error" in (layout.nginx_dir / "logs" / "error.log").read_text()


def _pki_trusting_another_ca(pki: Pki, directory: Path) -> Pki:
    shutil.copytree(pki.directory, directory)
    other = Authority("another CA")
    (directory / "ca.crt").write_bytes(other.cert.public_bytes(Encoding.PEM))
    return Pki(directory, other)


def test_revocation_through_the_cli_is_audited(uncached: local.Stack) -> None:
    """The redemption nginx caused and the revocation are both in the log, in order."""
    backend = Backend(uncached, "web-audit")
    url = backend.url()
    assert _status(uncached, url) == 200
    # The redemption is written behind (within a second, docs/audit.md "Loss window"): wait for it.
    wait_until(lambda: uncached.gatewayctl("audit", "search", "--kid", backend.kid, "--event", "url:redeemed"),
               "the redemption's record")  # fmt: skip
    backend.revoke()
    events = [r["event"] for r in uncached.gatewayctl("audit", "search", "--kid", backend.kid)]
    assert events[-3:] == ["url:issued", "url:redeemed", "key:revoked"]


# --- a signed URL reads: any other method is refused before the origin ------------------------


def test_an_origin_redirect_names_this_host_not_the_origin(cached: local.Stack) -> None:
    """A directory asked for without its "/": the origin's 301 names itself as nginx reached it
    (http://127.0.0.1:PORT/...); the viewer is sent to the path on this host (gateway-origin.conf's proxy_redirect)."""
    (cached.layout.media_dir / "v" / "intro" / "sub").mkdir(exist_ok=True)
    url = _at(Backend(cached, "web-redirect").url(scope="prefix"), "/v/intro/sub")
    status, headers, _ = fetch(url, cached.client_context())
    assert (status, headers["Location"]) == (301, f"{cached.edge_url}/v/intro/sub/"), headers


@pytest.mark.parametrize(("form", "number"), [("query", 190), ("path", 192)])
def test_a_valid_signed_url_carries_no_write_to_the_origin(cached: local.Stack, form: str, number: int) -> None:
    url = Backend(cached, f"web-method-{form}").url(scope="prefix", form=form)
    name, after = f"seg-{number}.ts", f"seg-{number + 1}.ts"  # each form its own: one origin log for the module
    segment = url.replace("master.m3u8", name) if form == "path" else _at(url, f"/v/intro/{name}")
    for method in ("DELETE", "PUT", "POST", "PROPFIND", "PATCH", "OPTIONS"):
        assert fetch(segment, cached.client_context(), method=method)[0] == 405, method
    assert fetch(segment, cached.client_context(), method="HEAD")[0] == 200
    assert fetch(segment, cached.client_context(), headers=OVERRIDES)[0] == 200  # a read, whatever it claims
    smuggled = b"PUT /v/intro/seg-1.ts HTTP/1.1\r\nHost: origin\r\nContent-Length: 0\r\n\r\n"
    assert fetch(segment, cached.client_context(), body=smuggled)[0] == 200  # served; the body goes nowhere
    # A query the token does not sign (an object store's versionId, response-content-type) is not passed on.
    unsigned = ("&" if "?" in segment else "?") + "versionId=3&response-content-type=text%2Fhtml"
    assert fetch(segment + unsigned, cached.client_context())[0] == 200
    origin_log = cached.layout.nginx_dir / "logs" / "origin.log"
    lines = origin_requests(origin_log, cached.client_context(), segment.replace(name, after), after)
    assert [line for line in lines if name in line] == [
        f"{method} /v/intro/{name} HTTP/1.1" for method in ("HEAD", "GET", "GET", "GET")
    ], lines
    assert overrides_seen(origin_log, name) == [NONE_SEEN] * 4  # no override header, no body
    # The site's own access log shows the path, never the credential: no query, a path token as "/_t/***".
    site_log = cached.layout.nginx_dir / "logs" / "media-gateway.access.log"
    logged = wait_until(lambda: [line for line in site_log.read_text().splitlines() if after in line],
                        "the site to log the sentinel request")  # fmt: skip
    token_segment = segment.removeprefix(cached.edge_url).split("/")[2] if form == "path" else "gw_sig="
    assert logged and all(token_segment not in line and "?" not in line for line in logged), logged
    assert "gw_sig" not in site_log.read_text() and "versionId" not in site_log.read_text()
    expected = f"/_t/***/v/intro/{after}" if form == "path" else f"/v/intro/{after}"
    assert f'"GET {expected} HTTP/1.1" 200' in logged[-1], logged
    # Behind any proxy, the gateway refuses too: nginx's auth subrequest names the method, Envoy's is the request's.
    uri, port, proxy = segment.removeprefix(cached.edge_url), cached.ports.gateway, cached.client_context("proxy")
    assert https(port, proxy, "/v1/verify", headers={"X-Original-URI": uri, "X-Original-Method": "GET"})[0] == 200
    assert https(port, proxy, "/v1/verify", headers={"X-Original-URI": uri, "X-Original-Method": "DELETE"})[0] == 403
    assert https(port, proxy, "/v1/verify" + uri, "DELETE")[0] == 403
    assert https(port, proxy, "/v1/verify" + uri, "GET")[0] == 200
