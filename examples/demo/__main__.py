"""``python -m examples.demo``: a page with thumbnails and an HLS player, through nginx, on this machine.

Runs the local stack (``stack.py``: the gateway over mutual TLS, nginx with
``deploy/nginx/``, an origin), makes sample media with ffmpeg, registers it,
creates the service principal ``demo-web`` with its own key, and serves the
application page (``app.py``) at ``https://127.0.0.1:PORT/demo/`` until
Ctrl-C. The stream plays through a path token that the player renews from the
page URL before it expires (``--token-ttl 6`` makes that happen every few
seconds). Revoke the key that signed the current token (shown under the
player) in another terminal and the player stops at the next segment::

    gatewayctl keys revoke KID --reason demo --data-dir WORKDIR/gateway

``--edge`` runs nginx in edge mode (``deploy/nginx/media-gateway-edge.conf``):
segments are checked inside nginx against the state the gateway pushes to it,
and the same ``keys revoke`` stops the player at the next segment.

Needs nginx (Debian's nginx-core; with ``--edge`` also libnginx-mod-http-lua), ffmpeg and hls.js (``npm ci --prefix
examples/demo``). The certificates come from a throwaway CA made at start
(``WORKDIR/pki/ca.crt``): the browser warns until it is trusted.

WORKDIR holds keys, a CA and a database: by default a new ``gateway-demo-*``
folder in the system's temporary directory, removed when the demo ends,
however it ends (Ctrl-C and SIGTERM included, during start-up too).
``--workdir DIR`` keeps everything in DIR instead, and leaves it there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

from examples.demo import stack as local
from examples.demo.app import HLS_JS, Demo, create_demo_app
from examples.demo.media import ITEMS, make_media
from gateway.access.credential_file import read_credential
from gateway.config import load_config

PRINCIPAL = "demo-web"
VIEWER, WORKSPACE = "viewer", "demo"


def _tools() -> tuple[str, str]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    ffmpeg = shutil.which("ffmpeg")
    missing = [
        what
        for what, found in (
            ("nginx (apt-get install nginx-core)", nginx),
            ("ffmpeg (apt-get install ffmpeg)", ffmpeg),
            ("hls.js (npm ci --prefix examples/demo)", HLS_JS.exists()),
        )
        if not found
    ]
    if missing:
        raise SystemExit(f"demo: missing {', '.join(missing)}")
    assert nginx and ffmpeg
    return nginx, ffmpeg


def _register(stack: local.Stack) -> tuple[str, str, str]:
    """The media, the backend principal and its key, a viewer; their credential file, kid and token."""
    for item in ITEMS:
        stack.gatewayctl("media", "put", item.media_id, "--owner", "studio", "--workspace", WORKSPACE,
                         "--visibility", "workspace", "--video", item.video, "--thumbnail", item.thumbnail)  # fmt: skip
    credential = stack.gatewayctl("principals", "add", PRINCIPAL, "--perm", "sign")["credential_file"]
    kid = stack.gatewayctl("keys", "create", "--principal", PRINCIPAL)["kid"]
    viewer = stack.gatewayctl("token", "--viewer", VIEWER, "--workspace", WORKSPACE, "--ttl", "8h")["token"]
    return credential, kid, viewer


async def _serve(demo: Demo, port: int, ready: dict[str, str]) -> None:
    runner = web.AppRunner(create_demo_app(demo), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, local.LOOPBACK, port).start()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before "ready": a script may stop it the moment it reads that
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(f"demo: open {ready['url']}  (kid {ready['kid']}; CA {ready['ca']})", flush=True)
    print("demo-ready " + json.dumps(ready), flush=True)  # one line for scripts and tests
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(workdir: Path, edge_port: int, signing: local.Signing, edge: bool = False) -> None:
    nginx, ffmpeg = _tools()
    ports = local.Ports(edge_port or local.free_port(), local.free_port(), local.free_port(), local.free_port())
    stack = local.prepare(workdir, ports, signing)
    make_media(ffmpeg, stack.layout.media_dir)
    app_port = local.free_port()
    stack.layout.hooks_dir.mkdir(parents=True, exist_ok=True)
    (stack.layout.hooks_dir / "demo.conf").write_text(
        f"location /demo/ {{\n    proxy_pass http://{local.LOOPBACK}:{app_port};\n}}\n"
    )
    with local.running(stack, nginx, edge=edge):
        credential, kid, viewer = _register(stack)
        config = load_config(stack.layout.data_dir, environ={})
        demo = Demo(stack.gateway_url, stack.client_context("backend"), read_credential(Path(credential)), viewer,
                    config.viewer.cookie, ITEMS)  # fmt: skip
        ready = {"url": f"{stack.edge_url}/demo/", "data_dir": str(stack.layout.data_dir), "kid": kid,
                 "ca": str(stack.pki.ca), "mode": "edge" if edge else "auth_request"}  # fmt: skip
        if edge:
            ready["edge_status"] = f"http://{local.LOOPBACK}:{ports.feed}/_gateway_edge_status"
        asyncio.run(_serve(demo, app_port, ready))


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM during start-up unwinds like Ctrl-C: every ``finally`` runs (processes stopped, files removed)."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def _temporary() -> Iterator[Path]:
    """A new ``gateway-demo-*`` folder, removed on the way out, whatever the way."""
    workdir = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"demo: removed {workdir} (its keys and CA with it)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--workdir",
        type=Path,
        help="an empty directory for everything, kept afterwards (default: a temporary one, removed)",
    )
    parser.add_argument("--port", type=int, default=0, help="the port viewers connect to (default: any free one)")
    parser.add_argument("--token-ttl", type=int, default=300, metavar="SECONDS",
                        help="how long each signed URL lives (signing.default_ttl; default 300); a few seconds "
                        "shows the player renewing its token from the page URL")  # fmt: skip
    parser.add_argument("--cache-window", type=int, default=60, metavar="SECONDS",
                        help="signing.cache_window (default 60; a URL then lives up to ttl + window: 0 makes "
                        "each token live exactly --token-ttl)")  # fmt: skip
    parser.add_argument("--edge", action="store_true",
                        help="nginx checks the segments itself (deploy/nginx/media-gateway-edge.conf, docs/edge.md; "
                        "needs libnginx-mod-http-lua) instead of asking the gateway about each one")  # fmt: skip
    args = parser.parse_args(argv)
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty")
    if args.token_ttl < 1 or args.cache_window < 0:
        parser.error("--token-ttl must be at least 1 and --cache-window at least 0")
    signing = local.Signing(args.token_ttl, args.cache_window, path_token_pages=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            workdir = args.workdir or stack.enter_context(_temporary())
            run(workdir, args.port, signing, args.edge)
    except KeyboardInterrupt:
        print("demo: stopped", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
