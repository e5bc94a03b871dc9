"""gatewayctl serve: check the address, bind it, open the services, and only then say "serving on".

Binding comes first, before any database is opened: a port in use or a bad
host is one line and an exit code (see ``bind``), not a traceback after a
claim that the gateway is serving.

``--workers N`` runs N processes on the same port: each binds its own socket
with ``SO_REUSEPORT``, so the kernel spreads connections across them. Each
worker has its own state view and change-feed poll and shares the database
(and its audit log) with the others, exactly as replicas on other hosts do.
The parent only supervises: it forwards SIGINT/SIGTERM, and when a worker
dies it stops the others and exits with that worker's status, so a service
manager restarts the whole set rather than serving on with fewer.

With ``[tls]`` the listener speaks HTTPS (``gateway.web.tls``). SIGHUP reloads
the certificate, key and client CA files named at start without closing
anything: open connections keep serving, new handshakes get the new
certificate; files that cannot be used are refused with a message on stderr
and the old certificate stays. The supervising parent forwards SIGHUP to
every worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import Callable

from aiohttp import web

from gateway.cli import context
from gateway.cli.output import printable
from gateway.config import Config
from gateway.errors import ConfigError, GatewayError, InvalidInput, Unavailable
from gateway.observe import logs
from gateway.services import open_services
from gateway.web import tls
from gateway.web.app import create_app
from gateway.web.server import Runner

_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_BACKLOG = 128


def _bad(name: str) -> type[GatewayError]:
    """A bad command-line value is bad usage (exit 2); a bad configured one a configuration error (78)."""
    return InvalidInput if name.startswith("--") else ConfigError


def _check_host(host: str, name: str) -> None:
    """An IP address or a host name; refused before any lookup (``[::1]`` or ``host:port`` are common slips)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise _bad(name)(f"{name} {host!r} is not an IP address or host name (no brackets, no port)")


def _addresses(host: str, port: int, name: str) -> list[tuple[int, tuple[str, int]]]:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise _bad(name)(f"{name} {host!r} cannot be resolved: {exc}") from None
    unique = {(family, (str(addr[0]), int(addr[1]))) for family, _, _, _, addr in infos}
    return sorted(unique)


def _listen(family: int, address: tuple[str, int], reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_error(exc: OSError, host: str, port: int, name: str) -> GatewayError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return Unavailable(f"cannot listen on {where}: the address is already in use")
    if exc.errno == errno.EADDRNOTAVAIL:
        return _bad(name)(f"{name} {host!r} is not an address of this machine")
    if exc.errno == errno.EACCES:
        return Unavailable(f"cannot listen on {where}: permission denied (ports below 1024 need privileges)")
    return Unavailable(f"cannot listen on {where}: {exc.strerror}")


def bind(
    host: str, port: int, *, host_name: str = "--host", port_name: str = "--port", reuse_port: bool = False
) -> list[socket.socket]:
    """Listening sockets for every address of ``host``. The names say where a value came from: a bad
    --host/--port is InvalidInput (exit 2), a bad server.host/server.port ConfigError (78); an
    address in use is Unavailable (69)."""
    if not 0 <= port <= 65535:
        raise _bad(port_name)(f"{port_name} must be from 0 to 65535, got {port}")
    if host:
        _check_host(host, host_name)
    sockets: list[socket.socket] = []
    try:
        for family, (ip, asked) in _addresses(host, port, host_name):
            # Port 0: every address of the host listens on the port the first one got.
            address = (ip, sockets[0].getsockname()[1] if sockets else asked)
            sockets.append(_listen(family, address, reuse_port))
    except OSError as exc:
        _close_all(sockets)
        raise _bind_error(exc, host, port, host_name) from None
    except BaseException:
        _close_all(sockets)
        raise
    return sockets


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _url(host: str, sockets: list[socket.socket], scheme: str = "http") -> str:
    bound, port = sockets[0].getsockname()[:2]  # the real port when the one asked for was 0
    shown = host or bound
    return f"{scheme}://[{shown}]:{port}" if ":" in shown else f"{scheme}://{shown}:{port}"


async def _serve(
    config: Config,
    host: str,
    sockets: list[socket.socket],
    announce: bool = True,
    checkpoints: bool = True,
    workers: int = 1,
) -> None:
    context = tls.server_context(config)  # before the database: a bad certificate is a configuration error
    services = await open_services(config)
    if workers > 1:  # sibling processes on this database: abuse limits and detection share through it
        services.limits.shared = services.watcher.shared = True
    app = create_app(services, checkpoints=checkpoints)
    access = logging.getLogger(logs.ACCESS_LOGGER) if config.access_log else None
    runner = Runner(  # JSON even for parse errors; SIGTERM waits shutdown_timeout for requests in flight
        app, handle_signals=False, access_log=access, access_log_class=logs.AccessLogger,
        shutdown_timeout=config.shutdown_timeout,
    )  # fmt: skip
    try:
        await runner.setup()  # from here on the runner's cleanup closes the services
    except BaseException:
        await services.close()
        raise
    try:
        for sock in sockets:
            await web.SockSite(runner, sock, ssl_context=context).start()
        if announce:
            url = _url(host, sockets, "https" if context else "http")
            print(printable(f"gateway ({config.environment}) serving on {url}"), flush=True)
        await _until_signalled(lambda: _reload(context, config))
        if announce:
            drain = f"finishing requests in flight (up to {config.shutdown_timeout:g} s)"
            print(f"gatewayctl serve: stopping: no new connections, {drain}, then the last audit group and checkpoint",
                  flush=True)  # fmt: skip
    finally:
        await runner.cleanup()  # stop accepting, wait for handlers, then cleanup_ctx (gateway.web.app) in reverse


async def _until_signalled(on_hangup: Callable[[], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    await stop.wait()


def _reload(context: ssl.SSLContext | None, config: Config) -> None:
    """SIGHUP: load the TLS files again into the live context (the next handshakes use them)."""
    if context is None:
        print("gatewayctl serve: SIGHUP: no [tls] certificate to reload", file=sys.stderr, flush=True)
        return
    try:
        served = tls.reload(context, config)
    except ConfigError as exc:
        print(printable(f"gatewayctl serve: TLS reload refused, still serving the old certificate: {exc.message}"),
              file=sys.stderr, flush=True)  # fmt: skip
        return
    print(printable(f"gatewayctl serve: reloaded the TLS certificate: {served}"), flush=True)


def run_serve(args: argparse.Namespace) -> int:
    config = context.load(args)
    logs.configure(config.log_format, config.log_level)  # one JSON object per line on stderr ([logging])
    host = args.host if args.host is not None else config.host
    port = args.port if args.port is not None else config.port
    names = {
        "host_name": "--host" if args.host is not None else "server.host",
        "port_name": "--port" if args.port is not None else "server.port",
    }
    if args.workers < 1:
        raise InvalidInput(f"--workers must be at least 1, got {args.workers}")
    sockets = bind(host, port, reuse_port=args.workers > 1, **names)
    if args.workers > 1:
        return _supervise(config, host, sockets, args.workers, names, not args.no_checkpoints)
    try:
        asyncio.run(_serve(config, host, sockets, checkpoints=not args.no_checkpoints))
    finally:
        _close_all(sockets)
    return 0


def _supervise(
    config: Config, host: str, first: list[socket.socket], workers: int, names: dict[str, str], checkpoints: bool
) -> int:
    """Fork ``workers`` processes, each on its own SO_REUSEPORT socket bound to the same address."""
    port = first[0].getsockname()[1]  # the real port, when 0 was asked for
    children: list[int] = []
    for index in range(workers):
        sockets = first if index == 0 else bind(host, port, reuse_port=True, **names)
        pid = os.fork()
        if pid == 0:  # the worker: serve until signalled, never return into the parent's code
            code = 0
            try:
                asyncio.run(_serve(config, host, sockets, announce=False, checkpoints=checkpoints, workers=workers))
            except GatewayError as exc:
                print(printable(f"gatewayctl serve (worker {index}): {exc.message}"), file=sys.stderr, flush=True)
                code = 69
            finally:
                os._exit(code)
        children.append(pid)
        if index:
            _close_all(sockets)
    url = _url(host, first, "https" if config.tls_cert_file else "http")
    _close_all(first)  # the workers hold their own: a listening socket nobody accepts on would strand clients
    print(printable(f"gateway ({config.environment}) serving on {url} with {workers} workers"), flush=True)
    return _wait_for(children)


def _wait_for(children: list[int]) -> int:
    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    status = 0
    remaining = set(children)
    while remaining:
        pid, raw = os.wait()
        remaining.discard(pid)
        code = os.waitstatus_to_exitcode(raw)
        if code and not status:
            status = code if code > 0 else 128 - code
            forward(signal.SIGTERM, None)  # one worker down: stop the set, let the service manager restart it
    return status


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve", parents=[common], help="run the HTTP gateway",
        description="Binds the address first, then opens the database and services, and prints "
        "'serving on URL' once it listens. On SIGINT or SIGTERM it stops accepting, lets requests in flight "
        "finish (server.shutdown_timeout), commits the last audit group and writes the last checkpoint. "
        "With [tls] it serves "
        "HTTPS, and SIGHUP reloads the certificate and key without dropping connections. A bad "
        "--host/--port exits 2, a bad server.host/server.port or TLS file 78, an address in use 69.",
    )  # fmt: skip
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=int, help="listen port, 0 for any free one (default: server.port)")
    serve.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="do not write audit checkpoints here: 'gatewayctl audit checkpoint --follow' runs them elsewhere "
        "(exporting every record again costs the serving process about a tenth of its CPU under load)",
    )
    serve.add_argument(
        "--workers", type=int, default=1,
        help="processes sharing the port (SO_REUSEPORT), each with its own state view (default 1)",
    )  # fmt: skip
    serve.set_defaults(func=run_serve, sync=True)
