"""The demo's application backend: the page a viewer opens, behind the same nginx as the media.

It plays the part of a customer's web application. It knows who the viewer
is (a development-IdP token, also set as the ``gw_viewer`` cookie so that the
page URLs ``/m/ID/thumbnail`` and ``/m/ID/video`` work from the page), and
asks the gateway for a path token for the stream's directory
(``/_t/<token>/v/ID/master.m3u8``): ``POST /v1/sign`` as the service
principal ``demo-web``, with its own client certificate and the viewer's
token. hls.js plays that URL; the playlist's relative segment URLs carry the
token by themselves, and nginx asks the gateway about each one. Before the
token expires, ``deploy/player/gateway-player.js`` renews it from the page URL
``/m/ID/video`` (``static/player.js``), so playback outlives every token.
"""

from __future__ import annotations

import html
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from examples.demo.media import Item
from gateway.access.credential_file import CredentialFile
from gateway.access.tokens import mint_principal_token

STATIC = Path(__file__).parent / "static"
PLAYER = Path(__file__).resolve().parents[2] / "deploy" / "player" / "gateway-player.js"
HLS_JS = Path(__file__).parent / "node_modules" / "hls.js" / "dist" / "hls.min.js"


@dataclass(frozen=True)
class Demo:
    gateway_url: str
    client_context: ssl.SSLContext  # the backend's client certificate, and trust in the gateway's CA
    credential: CredentialFile  # demo-web's API credential
    viewer_token: str
    viewer_cookie: str
    items: tuple[Item, ...]


DEMO = web.AppKey("demo", Demo)


def create_demo_app(demo: Demo) -> web.Application:
    app = web.Application()
    app[DEMO] = demo
    app.router.add_get("/demo/", page)
    app.router.add_get("/demo/player.js", _file(STATIC / "player.js", "text/javascript"))
    app.router.add_get("/demo/gateway-player.js", _file(PLAYER, "text/javascript"))
    app.router.add_get("/demo/style.css", _file(STATIC / "style.css", "text/css"))
    app.router.add_get("/demo/hls.min.js", _file(HLS_JS, "text/javascript"))
    return app


async def page(request: web.Request) -> web.Response:
    demo = request.app[DEMO]
    chosen = {item.media_id: item for item in demo.items}.get(request.query.get("play", demo.items[0].media_id))
    if chosen is None:
        raise web.HTTPNotFound()
    status, issued = await _sign(demo, chosen)
    response = web.Response(text=_render(demo, chosen, status, issued), content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    # For the page URLs only: the thumbnails' <img src="/m/ID/thumbnail"> send it, nothing else does.
    response.set_cookie(demo.viewer_cookie, demo.viewer_token, path="/m/", secure=True, httponly=True,
                        samesite="Strict")  # fmt: skip
    return response


async def _sign(demo: Demo, item: Item) -> tuple[int, dict[str, Any]]:
    """What any backend does: ask the gateway, as itself, for the viewer's URL."""
    credential = demo.credential
    token = mint_principal_token(
        credential_id=credential.credential_id, principal_id=credential.principal, private_seed=credential.seed,
        audience=credential.audience, now=time.time(), ttl=60,
    )  # fmt: skip
    body = {"media_id": item.media_id, "rendition": "video", "viewer_token": demo.viewer_token, "scope": "prefix",
            "form": "path"}  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{demo.gateway_url}/v1/sign",
            json=body,
            ssl=demo.client_context,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,  # fmt: skip
    ):
        return response.status, await response.json()


def _render(demo: Demo, chosen: Item, status: int, issued: dict[str, Any]) -> str:
    cards = "\n".join(_card(item, item is chosen) for item in demo.items)
    if status == 200:
        player = (
            f'<video id="player" muted autoplay playsinline controls data-src="{html.escape(issued["url"])}"'
            f' data-renew="/m/{chosen.media_id}/video"></video>'
        )
        note = (
            f'<span id="token">path token for <code>/v/{chosen.media_id}/</code>, signed by '
            f"<code>{html.escape(issued['kid'])}</code></span>"
        )
    else:
        player = '<div id="player" class="refused"></div>'
        note = f"the gateway refused to sign: {status} {html.escape(str(issued.get('message', '')))}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>media-gateway demo</title>
<link rel="stylesheet" href="/demo/style.css"></head>
<body>
<header><h1>media-gateway demo</h1>
<p>Thumbnails: page URLs (<code>/m/ID/thumbnail</code> &rarr; 302). Stream: a path token renewed from
<code>/m/ID/video</code>. nginx asks the gateway about every request.</p></header>
<main>
<section class="stage">
<h2>{html.escape(chosen.title)}</h2>
{player}
<p class="note">{note}</p>
<p id="status">starting&hellip;</p>
</section>
<aside>
<h2>Library</h2>
<ul class="items">{cards}</ul>
<h2>Segments through nginx</h2>
<ol id="log"></ol>
</aside>
</main>
<script src="/demo/hls.min.js"></script>
<script src="/demo/gateway-player.js"></script>
<script src="/demo/player.js"></script>
</body></html>
"""


def _card(item: Item, playing: bool) -> str:
    mark = ' class="playing"' if playing else ""
    return (
        f'<li{mark}><a href="/demo/?play={item.media_id}">'
        f'<img src="/m/{item.media_id}/thumbnail" alt="" width="160" height="90">'
        f"<span>{html.escape(item.title)}</span></a></li>"
    )


def _file(path: Path, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=path.read_bytes(), content_type=content_type)

    return serve
