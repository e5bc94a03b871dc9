"""The floor: an aiohttp hello-world served exactly as ``gatewayctl serve`` serves the gateway.

Same event loop policy, same access-log setting, one process: whatever the
gateway costs beyond this is its own work. ``GET /`` answers ``ok``; ``POST /``
reads the body and answers a small JSON document (the size of a sign answer).

Run: python -m benchmarks.hello --port 8090 [--reuse-port]

``--reuse-port``: several of these share the port (``SO_REUSEPORT``, as ``serve --workers`` does), for the
ceiling of two processes on this machine (``benchmarks.run``'s workers step).
"""

from __future__ import annotations

import argparse

from aiohttp import web

_BODY = b'{"url":"' + b"x" * 180 + b'","expires_at":1900000000,"kid":"gwk_aaaaaaaaaaaaaaaaaaaa"}'


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def hello_post(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=_BODY, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other hello processes")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/", hello_post)
    app.router.add_get("/{tail:.*}", hello)
    try:
        from gateway.cli.serving import install_event_loop  # the same loop choice as the gateway
    except ImportError:  # before serving options existed: the default loop, as serve used
        pass
    else:
        install_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, reuse_port=args.reuse_port)


if __name__ == "__main__":
    main()
