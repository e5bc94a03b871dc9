"""gatewayctl serve: check the address, bind it, open the services, and only then say "serving on".

Binding comes first, before any database is opened: a port in use or a bad
host is one line and an exit code (see ``bind``), not a traceback after a
claim that the gateway is serving.

``--workers N`` runs N processes on the same port: each has its own socket
with ``SO_REUSEPORT``, so the kernel spreads connections across them. The
first is bound *before* it allows port sharing, so a port another process
holds (another ``serve --workers``, whose sockets allow sharing, included)
is "in use" exactly as for plain ``serve``. Each worker has its own state
view and change-feed poll and shares the database (and its audit log) with
the others, exactly as replicas on other hosts do. The parent supervises
(``gateway.cli.workers``): "serving on" once every worker listens, a
worker's start-up error as plain ``serve`` would report it, signals
forwarded, and the whole set stopped when one worker dies.

Connections are bounded by ``[server]`` (``gateway.web.connections``): a header
deadline, a body deadline, the keep-alive idle time, and a cap on open
connections per process derived from ``ulimit -n``.

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
import re
import signal
import socket
import ssl
import sys
from collections.abc import Callable

from gateway.cli import context
from gateway.cli.output import printable
from gateway.cli.workers import Work, Workers
from gateway.config import Config
from gateway.errors import ConfigError, GatewayError, InvalidInput, Unavailable
from gateway.observe import logs
from gateway.services import freeze_start_up_heap, open_services
from gateway.web import tls
from gateway.web.app import create_app
from gateway.web.connections import GuardedSite
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


def _listen(family: int, address: tuple[str, int], reuse_port: bool = False, join: bool = False) -> socket.socket:
    """``reuse_port``: the port will be shared with this gateway's other workers; ``join``: this is one of them."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if join:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if reuse_port and not join:
            # Bound alone first: a port that any other process holds, even one that allows sharing, is in use.
            # Only then is it opened to the workers (the kernel checks a joiner against this flag as it is now).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
    host: str, port: int, *, host_name: str = "--host", port_name: str = "--port", reuse_port: bool = False,
    join: bool = False,
) -> list[socket.socket]:  # fmt: skip
    """Listening sockets for every address of ``host``. The names say where a value came from: a bad
    --host/--port is InvalidInput (exit 2), a bad server.host/server.port ConfigError (78); an
    address in use is Unavailable (69). ``reuse_port``: shared with the workers that bind with ``join``."""
    if not 0 <= port <= 65535:
        raise _bad(port_name)(f"{port_name} must be from 0 to 65535, got {port}")
    if host:
        _check_host(host, host_name)
    sockets: list[socket.socket] = []
    try:
        for family, (ip, asked) in _addresses(host, port, host_name):
            # Port 0: every address of the host listens on the port the first one got.
            address = (ip, sockets[0].getsockname()[1] if sockets else asked)
            sockets.append(_listen(family, address, reuse_port, join))
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
    ready: Callable[[], None] | None = None,
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
    freeze_start_up_heap()  # before the first request: no full collection walks start-up's objects again
    try:
        for sock in sockets:
            await GuardedSite(runner, sock, limits=runner.limits, ssl_context=context).start()
        stop = _on_signals(lambda: _reload(context, config))  # before "serving on": one may stop it at once
        if announce:
            url = _url(host, sockets, "https" if context else "http")
            print(printable(f"gateway ({config.environment}) serving on {url}"), flush=True)
        if ready is not None:
            ready()
        await stop.wait()
        if announce:
            _say_stopping(config)
    finally:
        await runner.cleanup()  # stop accepting, wait for handlers, then cleanup_ctx (gateway.web.app) in reverse


def _say_stopping(config: Config) -> None:
    drain = f"finishing requests in flight (up to {config.shutdown_timeout:g} s)"
    print(f"gatewayctl serve: stopping: no new connections, {drain}, then the last audit group and checkpoint",
          flush=True)  # fmt: skip


def _on_signals(on_hangup: Callable[[], None]) -> asyncio.Event:
    """SIGINT and SIGTERM set the event returned; SIGHUP calls ``on_hangup``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    return stop


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
    sockets = bind(host, port, reuse_port=args.workers > 1, join=False, **names)
    if args.workers > 1:
        return _supervise(config, host, sockets, args.workers, names, not args.no_checkpoints)
    try:
        asyncio.run(_serve(config, host, sockets, checkpoints=not args.no_checkpoints))
    finally:
        _close_all(sockets)
    return 0


def _supervise(
    config: Config, host: str, first: list[socket.socket], count: int, names: dict[str, str], checkpoints: bool
) -> int:
    """Fork ``count`` workers, each on its own SO_REUSEPORT socket bound to the same address."""
    port = first[0].getsockname()[1]  # the real port, when 0 was asked for
    url = _url(host, first, "https" if config.tls_cert_file else "http")
    pool = Workers(lambda: _say_stopping(config))
    try:
        for index in range(count):
            sockets = first if index == 0 else bind(host, port, reuse_port=True, join=True, **names)
            pool.start(index, _worker(config, host, sockets, count, checkpoints))
            if index:
                _close_all(sockets)
    except BaseException:
        pool.stop()
        pool.wait()
        raise
    finally:
        _close_all(first)  # the workers hold their own: a listening socket nobody accepts on would strand clients
    pool.supervise_signals()
    failure = pool.wait_ready()
    if failure is not None:
        pool.stop()
        pool.wait()
        raise failure
    if not pool.stopped:
        print(printable(f"gateway ({config.environment}) serving on {url} with {count} workers"), flush=True)
    return pool.wait()


def _worker(config: Config, host: str, sockets: list[socket.socket], count: int, checkpoints: bool) -> Work:
    def work(_index: int, ready: Callable[[], None]) -> None:
        asyncio.run(_serve(config, host, sockets, announce=False, checkpoints=checkpoints, workers=count, ready=ready))

    return work


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve", parents=[context.common_parser(with_json=False, actor=False)], help="run the HTTP gateway",
        description="Binds the address first, then opens the database and services, and prints "
        "'serving on URL' once it listens. On SIGINT or SIGTERM it stops accepting, lets requests in flight "
        "finish (server.shutdown_timeout), commits the last audit group and writes the last checkpoint. "
        "With [tls] it serves "
        "HTTPS, and SIGHUP reloads the certificate and key without dropping connections. Slow and idle clients "
        "are cut off (server.header_timeout, body_timeout, keepalive_timeout), as are peers that do not read "
        "their answers (send_timeout), and open connections are capped "
        "per process (server.max_connections, derived from ulimit -n). A bad "
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
