"""Against a real nginx: secure_link_md5 URLs we sign are accepted, tampered ones refused;
and nginx auth_request in front of the gateway's /v1/verify."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from gateway.model import Permission, Rendition, Viewer
from gateway.signing.dialects.base import SignRequest
from gateway.signing.dialects.nginx_secure_link import NginxSecureLinkDialect, nginx_config
from gateway.signing.issuance import SignItem
from gateway.web.app import create_app
from tests.nginx_server import running_nginx, status_of
from tests.support import ADMIN, World

pytestmark = pytest.mark.e2e
SECRET = "t0p-s3cret"
EXPRESSION = "$secure_link_expires$uri$remote_addr$arg_gw_kid $secret"


def test_nginx_accepts_our_secure_links_and_refuses_tampering(tmp_path: Path) -> None:
    dialect = NginxSecureLinkDialect()
    key = dialect.load_key(SECRET.encode(), None)
    location = nginx_config(EXPRESSION, SECRET, "/media/").rstrip().removesuffix("}") + '    return 200 "ok";\n}\n'
    with running_nginx(tmp_path, location) as base:
        now = int(time.time())

        def signed(path: str, expires: int, ip: str = "127.0.0.1") -> str:
            request = SignRequest(
                base + path, expires, ip=ip, attribution="gwk_alice1", options={"expression": EXPRESSION}
            )
            return dialect.sign(request, key).url

        good = signed("/media/v/abc/seg-1.ts", now + 300)
        assert status_of(good) == 200
        assert status_of(good.replace("seg-1", "seg-2")) == 403
        assert status_of(good.replace("gwk_alice1", "gwk_alice2")) == 403  # the key id is signed
        assert status_of(good.replace("expires=", "expires=1")) == 403
        assert status_of(signed("/media/v/abc/seg-1.ts", now + 300, ip="127.0.0.2")) == 403
        assert status_of(signed("/media/v/abc/seg-1.ts", now - 10)) == 410
        assert status_of(base + "/media/v/abc/seg-1.ts") == 403


async def test_nginx_auth_request_in_front_of_the_gateway(tmp_path: Path, world: World) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.media("m1")
    world.clock.now = time.time()
    server = TestServer(create_app(world.services, close_services=False), host="127.0.0.1")
    await server.start_server()
    try:
        # 'return' would run before the access phase and skip auth_request: serve a file.
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "media.txt").write_text("media")
        block = f"""
        location /v/ {{
            auth_request /_verify;
            root {tmp_path}/www;
            try_files /media.txt =404;
        }}
        location = /_verify {{
            internal;
            proxy_pass http://127.0.0.1:{server.port}/v1/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
"""
        principal = await world.services.store.principals.get("web")
        assert principal is not None
        item = SignItem("m1", Rendition.VIDEO, prefix=True)
        [outcome] = await world.services.issuer.issue(
            principal, Viewer("alice", source="asserted"), [item], ADMIN, world.clock()
        )
        assert outcome.issued is not None
        uri = outcome.issued.url.removeprefix("https://cdn.example.com")
        with running_nginx(tmp_path, block) as base:
            ok = await asyncio.to_thread(status_of, base + uri)
            segment = await asyncio.to_thread(status_of, base + uri.replace("master.m3u8", "seg-7.ts"))
            tampered = await asyncio.to_thread(status_of, base + uri.replace("/v/m1/", "/v/m2/"))
            kid = outcome.issued.kid
            await world.services.admin.revoke_key(ADMIN, kid, "stolen", world.clock())
            revoked = await asyncio.to_thread(status_of, base + uri)
        assert (ok, segment, tampered, revoked) == (200, 200, 403, 403)
    finally:
        await server.close()
