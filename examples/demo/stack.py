"""The local stack: the shipped nginx site in front of a real gateway and an origin, all on loopback.

- the gateway: ``gatewayctl serve`` as its own process, HTTPS with client
  certificates demanded on ``/v1/verify`` and the API (``[tls]``);
- nginx (Debian's nginx-core) running ``deploy/nginx/media-gateway.conf`` and
  its snippets, changed only where they say ``EDIT`` (``site_files``);
- the origin: a directory served by a second nginx server on loopback, as an
  object store or file server would be in a deployment.

``python -m examples.demo`` runs it with a page and a player;
``tests/test_nginx_e2e.py`` and ``tests/test_browser_demo.py`` test it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.demo.pki import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "nginx"
GATEWAYCTL = (sys.executable, "-m", "gateway.cli.main")
LOOPBACK = "127.0.0.1"
# The routes nginx's client certificate (and the backend's) must unlock: everything but pages and health.
REQUIRE_CLIENT_CERT = ("verify", "api")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    edge: int  # nginx, where viewers connect (HTTPS)
    gateway: int  # gatewayctl serve (HTTPS, client certificates)
    origin: int  # the media directory
    feed: int = 0  # edge mode: nginx's loopback server its Lua timers reach the gateway through

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


@dataclass(frozen=True)
class Signing:
    """What the gateway hands out: token lifetime, cache window, and whether page URLs give path tokens."""

    default_ttl: int = 300
    cache_window: int = 60
    # [pages] scope = "prefix", form = "path": /m/ID/video redirects to /_t/<token>/v/ID/master.m3u8.
    path_token_pages: bool = False


@dataclass(frozen=True)
class Layout:
    """Where everything lives under one work directory."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def media_dir(self) -> Path:
        return self.root / "www"

    @property
    def nginx_dir(self) -> Path:
        return self.root / "nginx"

    @property
    def hooks_dir(self) -> Path:
        """``media-gateway.d``: locations of one's own in the site (the demo's page)."""
        return self.nginx_dir / "media-gateway.d"

    @property
    def gateway_log(self) -> Path:
        return self.root / "gateway.log"


@dataclass(frozen=True)
class Stack:
    layout: Layout
    ports: Ports
    pki: Pki

    @property
    def edge_url(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.edge}"

    @property
    def gateway_url(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.gateway}"

    def client_context(self, certificate: str | None = None) -> ssl.SSLContext:
        """Trusts the throwaway CA; presents ``certificate`` (``proxy``, ``backend``) if named."""
        context = ssl.create_default_context(cafile=self.pki.ca)
        if certificate:
            context.load_cert_chain(self.pki.cert(certificate), self.pki.key(certificate))
        return context

    def gatewayctl(self, *argv: str) -> Any:
        return gatewayctl(self.layout.data_dir, *argv)


def gatewayctl(data_dir: Path, *argv: str) -> Any:
    """Run one ``gatewayctl ... --json`` command as a user would; its JSON answer."""
    done = subprocess.run([*GATEWAYCTL, *argv, "--data-dir", str(data_dir), "--json"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"gatewayctl {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return json.loads(done.stdout)


# --- the gateway ------------------------------------------------------------------------------


def init_gateway(layout: Layout, ports: Ports, pki: Pki, signing: Signing = Signing()) -> None:
    """``gatewayctl init``, then the settings of this stack: its ports, the edge as CDN, ``[tls]``, ``signing``."""
    subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(layout.data_dir)], check=True, capture_output=True)
    config = layout.data_dir / "gateway.toml"
    text = _replace_each(config.read_text(), {
        "port = 8080": f"port = {ports.gateway}",
        'cdn_base_url = "https://cdn.example.com"': f'cdn_base_url = "https://{LOOPBACK}:{ports.edge}"',
        "default_ttl = 300": f"default_ttl = {signing.default_ttl}",
        "cache_window = 60": f"cache_window = {signing.cache_window}",
    })  # fmt: skip
    if signing.path_token_pages:
        text += '\n[pages]\nscope = "prefix"\nform = "path"\n'

    required = ", ".join(f'"{route}"' for route in REQUIRE_CLIENT_CERT)
    text += f"""
[tls]
cert_file = "{pki.cert("gateway")}"
key_file = "{pki.key("gateway")}"
client_ca_file = "{pki.ca}"
require_client_cert = [{required}]

[edge]
mtls = true
client_names = ["nginx"]
hmac_secrets = true
"""
    config.write_text(text)


@contextmanager
def gateway_process(layout: Layout, url: str, context: ssl.SSLContext) -> Iterator[subprocess.Popen[bytes]]:
    """``gatewayctl serve`` until the context exits; its output goes to ``layout.gateway_log``."""
    with layout.gateway_log.open("ab") as log:
        proc = subprocess.Popen([*GATEWAYCTL, "serve", "--data-dir", str(layout.data_dir)],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for(url + "/readyz", context, proc, layout.gateway_log)
        yield proc
    finally:
        _stop(proc)


# --- nginx ------------------------------------------------------------------------------------


# What a media location must never pass to the origin, as nginx names the request headers.
ORIGIN_NEVER_SEES = (
    "x_http_method_override", "x_http_method", "x_method_override", "x_forwarded_method", "x_original_method",
    "x_original_http_method", "content_length", "transfer_encoding",
)  # fmt: skip


def site_files(
    layout: Layout, ports: Ports, pki: Pki, *, decision_cache: bool = True, edge: bool = False, feed_token: str = ""
) -> Path:
    """The shipped site and snippets with each ``EDIT`` value set for this stack; the site's path.

    Every replaced text must be in the shipped file, so this cannot silently drift from it. ``feed_token``
    (edge mode): the bearer token the Lua timers present to the feed, as the site's comment says to add it.
    """
    snippets = layout.nginx_dir / "snippets"
    snippets.mkdir(parents=True, exist_ok=True)
    layout.hooks_dir.mkdir(parents=True, exist_ok=True)
    include = {"/etc/nginx/snippets/": f"{snippets}/"}
    verify = _replace_each((DEPLOY / "gateway-verify.conf").read_text(), include)
    if not decision_cache:
        verify = _replace_each(verify, {f"    include {snippets}/gateway-verify-cache.conf;\n": ""})
    (snippets / "gateway-verify.conf").write_text(verify)
    for snippet in ("gateway-verify-cache.conf", "gateway-origin.conf"):
        (snippets / snippet).write_text((DEPLOY / snippet).read_text())
    name = "media-gateway-edge.conf" if edge else "media-gateway.conf"
    site = _replace_each((DEPLOY / name).read_text(), {
        **include,
        **(_edge_values(ports, feed_token) if edge else {}),
        "/etc/nginx/media-gateway/": f"{pki.directory}/",
        "/etc/nginx/media-gateway.d/": f"{layout.hooks_dir}/",
        "/var/cache/nginx/media-gateway-verify": str(layout.nginx_dir / "decisions"),
        "/var/log/nginx/media-gateway.access.log": str(layout.nginx_dir / "logs" / "media-gateway.access.log"),
        "server 127.0.0.1:8443;": f"server {LOOPBACK}:{ports.gateway};",
        "server 127.0.0.1:9000;": f"server {LOOPBACK}:{ports.origin};",
        "listen 443 ssl;": f"listen {LOOPBACK}:{ports.edge} ssl;",
    })  # fmt: skip
    path = layout.nginx_dir / name
    path.write_text(site)
    return path


def _edge_values(ports: Ports, feed_token: str) -> dict[str, str]:
    if not ports.feed:
        raise ValueError("edge mode needs Ports.feed: the loopback port of the feed's server")
    values = {
        "/usr/share/media-gateway/lua/": f"{DEPLOY / 'lua'}/",
        "127.0.0.1:8089": f"{LOOPBACK}:{ports.feed}",
    }
    if feed_token:
        wait = "        wait = 0.5,"
        values[wait] = f"{wait}\n        token = {json.dumps(feed_token)},"
    return values


# Debian's nginx.conf loads these from /etc/nginx/modules-enabled/; this stack's own nginx.conf must say so.
LUA_MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")


def lua_modules() -> str:
    return "".join(f"load_module /usr/share/nginx/modules/{name};\n" for name in LUA_MODULES)


def nginx_config(layout: Layout, ports: Ports, site: Path, *, edge: bool = False, origin: bool = True) -> Path:
    """nginx.conf: the site, and the origin as a second server serving ``layout.media_dir``."""
    work = layout.nginx_dir
    for name in ("logs", "temp"):
        (work / name).mkdir(parents=True, exist_ok=True)
    mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
    # As root, nginx's workers would drop to 'nobody', who cannot read 0700 work directories.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    modules = lua_modules() if edge else ""
    # The origin's own log: what reached it (tests prove a refused request never did).
    # Logged with the method-override headers a framework at the origin would honour and a body's framing:
    # none may arrive (deploy/nginx/gateway-origin.conf).
    overrides = "|".join(f"$http_{name}" for name in ORIGIN_NEVER_SEES)
    origin_format = f'log_format origin \'$remote_addr "$request" overrides="{overrides}"\';'
    origin_log = f"access_log {work}/logs/origin.log origin;"
    origin_server = (
        f"{origin_format} server {{ listen {LOOPBACK}:{ports.origin}; root {layout.media_dir}; {origin_log} }}"
        if origin
        else ""
    )
    workers = 2 if edge else 1  # edge mode: the state is shared between workers, so test it with two
    conf.write_text(f"""
{modules}{user}
worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/logs/error.log notice;
events {{ worker_connections 256; }}
http {{
    {mime}
    access_log {work}/logs/access.log;
    client_body_temp_path {work}/temp/body;
    proxy_temp_path {work}/temp/proxy;
    fastcgi_temp_path {work}/temp/fastcgi;
    uwsgi_temp_path {work}/temp/uwsgi;
    scgi_temp_path {work}/temp/scgi;
    include {site};
    {origin_server}
}}
""")
    return conf


@contextmanager
def nginx_process(binary: str, conf: Path, url: str, context: ssl.SSLContext) -> Iterator[subprocess.Popen[bytes]]:
    error_log = conf.parent / "logs" / "error.log"
    proc = subprocess.Popen([binary, "-p", str(conf.parent), "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        _wait_for(url + "/__nginx_alive", context, proc, error_log)
        yield proc
    finally:
        _stop(proc)


# --- all of it --------------------------------------------------------------------------------


def prepare(root: Path, ports: Ports | None = None, signing: Signing = Signing()) -> Stack:
    """A fresh work directory: certificates, an initialised gateway, an empty media directory."""
    layout = Layout(root)
    layout.media_dir.mkdir(parents=True, exist_ok=True)
    ports = ports or Ports.free()
    pki = make_pki(root / "pki")
    init_gateway(layout, ports, pki, signing)
    return Stack(layout, ports, pki)


@contextmanager
def running(
    stack: Stack, nginx: str, *, decision_cache: bool = True, edge: bool = False, feed_token: str = ""
) -> Iterator[Stack]:
    """The gateway, then nginx in front of it; both stopped when the context exits.

    ``edge``: nginx runs deploy/nginx/media-gateway-edge.conf (native URLs checked in nginx, docs/edge.md).
    """
    site = site_files(stack.layout, stack.ports, stack.pki, decision_cache=decision_cache, edge=edge,
                      feed_token=feed_token)  # fmt: skip
    conf = nginx_config(stack.layout, stack.ports, site, edge=edge)
    context = stack.client_context()
    with ExitStack() as processes:
        processes.enter_context(gateway_process(stack.layout, stack.gateway_url, context))
        processes.enter_context(nginx_process(nginx, conf, stack.edge_url, context))
        yield stack


def _replace_each(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"the shipped configuration no longer contains {old!r}")
        text = text.replace(old, new)
    return text


def _wait_for(url: str, context: ssl.SSLContext, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context):  # noqa: S310 (our own loopback URL)
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered at {url} within 30 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
