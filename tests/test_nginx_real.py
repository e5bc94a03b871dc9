"""Against a real nginx (Debian's nginx-core).

- secure_link_md5: URLs we sign are accepted by the config ``nginx_config`` writes, tampered and
  shifted ones refused (the default expression is injective; values joined without separators are not);
- auth_request in front of the gateway's /v1/verify, with the shipped deploy/nginx snippet:
  prefix tokens never reach another directory in any spelling, in any dialect, and a client's
  X-Gateway-Profile never switches the profile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from gateway.config import Config
from gateway.model import Permission, Rendition, Viewer
from gateway.signing.dialects.base import SignRequest
from gateway.signing.dialects.nginx_secure_link import DEFAULT_EXPRESSION, NginxSecureLinkDialect, nginx_config
from gateway.signing.issuance import SignItem
from gateway.web.app import create_app
from tests.dialect_fixtures import MEDIA_PATH, PREFIX_PROFILES, open_deployment, origin_form
from tests.nginx_server import raw_get, running_nginx, status_of
from tests.nginx_site import plain_http_snippet
from tests.security.test_path_escape import ESCAPES
from tests.support import ADMIN, Clock, World

pytestmark = pytest.mark.e2e
SECRET = "t0p-s3cret"
SNIPPET = Path(__file__).parent.parent / "deploy" / "nginx" / "gateway-verify.conf"
# nginx's own $remote_addr, taken from X-Forwarded-For so a test can be any client.
REAL_IP = "    set_real_ip_from 127.0.0.1;\n    real_ip_header X-Forwarded-For;\n"


def _secure_link_location(expression: str) -> str:
    block = nginx_config(expression, SECRET, "/media/")
    return REAL_IP + block.rstrip().removesuffix("}") + '    return 200 "ok";\n}\n'


def test_nginx_accepts_our_secure_links_and_refuses_tampering(tmp_path: Path) -> None:
    dialect = NginxSecureLinkDialect()
    key = dialect.load_key(SECRET.encode(), None)
    with running_nginx(tmp_path, _secure_link_location(DEFAULT_EXPRESSION)) as base:
        now = int(time.time())

        def signed(path: str, expires: int, ip: str = "127.0.0.1") -> str:
            return dialect.sign(SignRequest(base + path, expires, ip=ip, attribution="gwk_alice1"), key).url

        good = signed("/media/v/abc/seg-1.ts", now + 300)
        assert "gw_kid=gwk_alice1" in good
        assert status_of(good) == 200
        assert status_of(good.replace("seg-1", "seg-2")) == 403
        assert status_of(good.replace("gwk_alice1", "gwk_alice2")) == 403  # the key id is signed
        assert status_of(good.replace("expires=", "expires=1")) == 403
        assert status_of(signed("/media/v/abc/seg-1.ts", now + 300, ip="127.0.0.2")) == 403
        assert status_of(signed("/media/v/abc/seg-1.ts", now - 10)) == 410
        assert status_of(base + "/media/v/abc/seg-1.ts") == 403


@pytest.mark.parametrize(
    ("expression", "shifted_status"),
    [(DEFAULT_EXPRESSION, 403), ("$secure_link_expires$uri$remote_addr$arg_gw_kid $secret", 200)],
    ids=["default-with-separators", "no-separators"],
)
def test_a_url_for_one_client_does_not_open_another_path_for_another(
    tmp_path: Path, expression: str, shifted_status: int
) -> None:
    """/media/x.mp4 for 127.0.0.1 and /media/x.mp41 for 27.0.0.1 hash alike unless the values are separated."""
    dialect = NginxSecureLinkDialect()
    key = dialect.load_key(SECRET.encode(), None)
    options = {"expression": expression}
    with running_nginx(tmp_path, _secure_link_location(expression)) as base:
        request = SignRequest(base + "/media/x.mp4", int(time.time()) + 300, ip="127.0.0.1", options=options)
        url = dialect.sign(request, key).url
        assert status_of(url, {"X-Forwarded-For": "127.0.0.1"}) == 200
        shifted = url.replace("/media/x.mp4?", "/media/x.mp41?")
        assert status_of(shifted, {"X-Forwarded-For": "27.0.0.1"}) == shifted_status


# --- auth_request in front of the gateway, with the shipped snippet ------------------------------


def _media_root(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    for path, body in {"v/a/master.m3u8": "a", "v/a/seg-1.ts": "seg", "v/other/master.m3u8": "PRIVATE"}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(body)
    return root


def _snippet(tmp_path: Path, profile: str | None) -> Path:
    """The shipped snippet naming ``profile`` (None: with the header line removed, to show why it is there)."""
    text = SNIPPET.read_text()
    assert "    proxy_set_header X-Gateway-Profile native;\n" in text
    line = f"    proxy_set_header X-Gateway-Profile {profile};\n" if profile else ""
    text = plain_http_snippet(text)  # these tests' gateway listens without TLS
    copy = tmp_path / f"gateway-verify-{profile}.conf"
    copy.write_text(text.replace("    proxy_set_header X-Gateway-Profile native;\n", line))
    return copy


@contextmanager
def _nginx_in_front(tmp_path: Path, port: int, profile: str | None) -> Iterator[str]:
    root = _media_root(tmp_path)
    block = f"""
        include {_snippet(tmp_path, profile)};
        location = /__nginx_alive {{ return 204; }}  # the start-up probe must not wait for the gateway
        location / {{
            auth_request /_gateway_verify;
            rewrite ^/bcdn_token=[^/]*(/.*)$ $1 break;  # Bunny's directory tokens sit in the path
            root {root};
        }}
"""
    upstream = f"    upstream media_gateway {{ server 127.0.0.1:{port}; }}\n"
    with running_nginx(tmp_path / f"nginx-{profile}", block, upstream) as base:
        yield base


@asynccontextmanager
async def _gateway(world: World) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(world.services, close_services=False), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def deployment(config: Config) -> AsyncIterator[World]:
    world = await open_deployment(config.data_dir, Clock(time.time()))
    yield world
    await world.services.close()


async def _prefix_uri(world: World, profile: str) -> str:
    principal = await world.services.store.principals.get("web")
    assert principal is not None
    item = SignItem("a", Rendition.VIDEO, prefix=True, profile=profile)
    [outcome] = await world.services.issuer.issue(principal, Viewer("bob", source="asserted"), [item], ADMIN,
                                                  world.clock())  # fmt: skip
    assert outcome.issued is not None
    return origin_form(outcome.issued.url)


@pytest.mark.parametrize("profile", PREFIX_PROFILES)
async def test_through_nginx_a_prefix_token_never_reaches_another_directory(
    tmp_path: Path, deployment: World, profile: str, caplog: pytest.LogCaptureFixture
) -> None:
    uri = await _prefix_uri(deployment, profile)
    async with _gateway(deployment) as server:
        assert server.port is not None
        with _nginx_in_front(tmp_path, server.port, profile) as base:

            async def get(target: str, **headers: str) -> tuple[int, bytes]:
                return await asyncio.to_thread(raw_get, base, target, headers)

            assert await get(uri.replace(MEDIA_PATH, "/v/a/seg-1.ts")) == (200, b"seg")
            assert (await get(uri.replace(MEDIA_PATH, "/v/other/master.m3u8")))[0] == 403
            with caplog.at_level(logging.INFO, logger="gateway.verify"):
                escaped = {name: await get(uri.replace(MEDIA_PATH, path)) for name, path in ESCAPES.items()}
    assert {name: status for name, (status, _) in escaped.items()} == dict.fromkeys(ESCAPES, 403)
    reasons = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records if r.name == "gateway.verify"]
    # The /v/other denial may be logged once the capture has begun (the server answers nginx first).
    assert reasons.count("non-canonical-path") == len(ESCAPES), reasons
    assert len(reasons) - len(ESCAPES) <= 1, reasons  # at most that one earlier denial (its reason is the dialect's)


async def test_through_nginx_a_client_cannot_choose_the_profile(tmp_path: Path, deployment: World) -> None:
    """The deployment verifies native URLs here; a client names a profile its URL would pass in."""
    akamai = await _prefix_uri(deployment, "akamai")
    native = await _prefix_uri(deployment, "native")
    async with _gateway(deployment) as server:
        assert server.port is not None
        with _nginx_in_front(tmp_path, server.port, "native") as base:
            shipped = await asyncio.to_thread(raw_get, base, akamai, {"X-Gateway-Profile": "akamai"})
            honest = await asyncio.to_thread(raw_get, base, native, {"X-Gateway-Profile": "akamai"})
        with _nginx_in_front(tmp_path, server.port, None) as base:  # a snippet without the header line
            forwarded = await asyncio.to_thread(raw_get, base, akamai, {"X-Gateway-Profile": "akamai"})
    assert shipped[0] == 403  # nginx replaced the client's header with the location's profile
    assert honest == (200, b"a")
    assert forwarded == (200, b"a")  # why the snippet sets it: nginx is a trusted proxy


async def test_nginx_auth_request_in_front_of_the_gateway(tmp_path: Path, world: World) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    world.clock.now = time.time()
    principal = await world.services.store.principals.get("web")
    assert principal is not None
    item = SignItem("m1", Rendition.VIDEO, prefix=True)
    [outcome] = await world.services.issuer.issue(
        principal, Viewer("alice", source="asserted"), [item], ADMIN, world.clock()
    )
    assert outcome.issued is not None
    uri = origin_form(outcome.issued.url)
    (tmp_path / "www" / "v" / "m1").mkdir(parents=True)
    (tmp_path / "www" / "v" / "m1" / "master.m3u8").write_text("media")
    (tmp_path / "www" / "v" / "m1" / "seg-7.ts").write_text("media")
    async with _gateway(world) as server:
        assert server.port is not None
        block = f"""
        include {_snippet(tmp_path, "native")};
        location /v/ {{
            auth_request /_gateway_verify;
            root {tmp_path}/www;
        }}
"""
        upstream = f"    upstream media_gateway {{ server 127.0.0.1:{server.port}; }}\n"
        with running_nginx(tmp_path, block, upstream) as base:
            ok = await asyncio.to_thread(status_of, base + uri)
            segment = await asyncio.to_thread(status_of, base + uri.replace("master.m3u8", "seg-7.ts"))
            tampered = await asyncio.to_thread(status_of, base + uri.replace("/v/m1/", "/v/m2/"))
            await world.services.admin.revoke_key(ADMIN, outcome.issued.kid, "stolen", world.clock())
            revoked = await asyncio.to_thread(status_of, base + uri)
    assert (ok, segment, tampered, revoked) == (200, 200, 403, 403)
