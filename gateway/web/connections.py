"""Bounds on connections: a header deadline, and a cap on how many are open at once.

aiohttp bounds the rest itself: ``keepalive_timeout`` closes a connection that
has no complete request within that long of its accept or its previous
answer, and ``max_line_size``/``max_field_size``/``client_max_size`` bound
sizes. What it has no knob for (aiohttp 3.14):

* **A header deadline.** A request's line and headers must be complete within
  ``header_timeout`` of its first byte (of the accept, for a connection's first
  request). Without it a client trickling one header byte a second holds its
  socket for the whole keep-alive window (an hour by aiohttp's default).
* **A connection cap.** Every socket is a file descriptor. With no cap, idle
  sockets use up ``ulimit -n`` and the store, the audit writer, checkpoints and
  health checks fail with "Too many open files". Above ``max_connections`` a
  new connection closes the oldest one that does not read its answers (see
  below), else the oldest one not in the middle of a request (idle keep-alive,
  or still sending its headers), as nginx reuses keep-alive connections when it
  runs out; when every connection is mid-request, the new one is closed at
  once. So a health check always gets in while slow or idle clients hold the
  sockets.
* **A send deadline.** A peer that pipelines requests and never reads the
  answers is forever "mid-request": its answer waits on a full socket. Once
  the transport has paused writing (its buffer over the high-water mark, the
  kernel's full) for ``send_timeout`` with no progress, the connection is
  aborted; its unsent answers are dropped (``transport.close()`` would wait to
  flush them, for ever).

The cap counts connections from the end of the TLS handshake; a handshake is
bounded by the header deadline (``GuardedSite``).

Written against aiohttp 3.14's ``RequestHandler`` internals (its parsed-message
queue and in-progress flag tell a connection mid-request from an idle one);
``tests/security/test_slow_clients.py`` runs the real server over sockets and
fails if an upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.config import Config
from gateway.observe.metrics import Tally

log = logging.getLogger("gateway.web.connections")

# Descriptors kept for everything but client connections: the store's connections and files, the audit
# writer, checkpoint exports, webhook and JWKS clients, log files, the event loop's own.
RESERVED_FILES = 64
_MAX_ACCEPT_BATCH = 128
_MIN_CONNECTIONS = 8
# More requests than this parsed and waiting behind the one being answered: a peer that sends without reading
# (a browser or a proxy pipelines a handful at most). aiohttp stops reading at 32 queued (MAX_MSG_QUEUE_SIZE).
PIPELINED_NOT_READING = 8


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    send_timeout: float
    max_connections: int
    accept_batch: int  # the listen backlog, and so how many sockets one wake-up of the loop may accept


def file_limit() -> int:
    """This process's ``ulimit -n`` (the soft limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def limits_for(header_timeout: float, configured: int, files: int, send_timeout: float = 30.0) -> ConnectionLimits:
    """The cap: ``configured``, or (0) what ``files`` descriptors leave after the reserve and two accept batches.

    asyncio accepts up to a backlog's worth of sockets before any of them is counted, and the connections the
    cap closes to make room for them give their descriptors back only on the loop's next turn: two batches are
    reserved on top of the cap. A configured cap that does not fit under ``files`` is lowered to what does.
    """
    batch = max(_MIN_CONNECTIONS, min(_MAX_ACCEPT_BATCH, files // 8))
    fits = max(_MIN_CONNECTIONS, files - RESERVED_FILES - 2 * batch)
    if configured > fits:
        log.warning(
            "server.max_connections = %d does not fit under ulimit -n %d: capped at %d", configured, files, fits
        )
    cap = min(configured, fits) if configured else fits
    return ConnectionLimits(
        header_timeout=header_timeout, send_timeout=send_timeout, max_connections=cap, accept_batch=batch
    )


def connection_limits(config: Config) -> ConnectionLimits:
    """The ``[server]`` bounds for this process (each ``serve --workers`` worker has its own descriptors)."""
    return limits_for(config.header_timeout, config.max_connections, file_limit(), config.send_timeout)


class GuardedHandler(web.RequestHandler):
    """A connection with a header and a send deadline: its headers arrive in time and its answers leave, or it
    is closed."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = manager.limits.header_timeout
        self._send_timeout = manager.limits.send_timeout
        self._closed = manager.closed
        # The header deadline: when the current request's headers are due (None: none awaited), and the one timer
        # that enforces it. Arming and disarming only set the time: a timer per request (call_later, cancel)
        # costs every keep-alive request more than the rest of this class.
        self._header_due: float | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        """In the middle of a request: its headers are in, and its answer is not yet sent."""
        return self._request_in_progress or bool(self._messages)

    @property
    def not_reading(self) -> bool:
        """Its peer does not read its answers: writing is paused, or requests pile up behind the one answered."""
        return self.writing_paused or len(self._messages) > PIPELINED_NOT_READING

    def abort(self) -> None:
        """Close now, dropping any unsent answer: ``force_close`` alone waits for the buffer to flush."""
        transport = self.transport
        self.force_close()
        if transport is not None:
            transport.abort()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self._loop.call_later(self._send_timeout, self._send_deadline_passed)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_send()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_due is None and data and not self.busy:
            self._arm()  # the first byte of a request after an answer: its headers have header_timeout
        super().data_received(data)
        if self._messages:  # a request's headers are complete
            self._disarm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._disarm_send()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_due is None and not self._force_close:
            self._header_due = self._loop.time() + self._header_timeout
            if self._deadline is None:
                self._deadline = self._loop.call_at(self._header_due, self._deadline_passed)

    def _disarm(self) -> None:
        self._header_due = None  # the timer, if any, lapses when it fires (or serves a later request's deadline)

    def _deadline_passed(self) -> None:
        self._deadline = None
        due = self._header_due
        if due is None:
            return  # the headers came in time
        if due > self._loop.time():  # a later request's headers: their own deadline
            self._deadline = self._loop.call_at(due, self._deadline_passed)
            return
        self._header_due = None
        if not self.busy:
            self.log_debug("closed a connection whose headers took over %g s", self._header_timeout)
            self._closed.add(("header_timeout",))
            self.force_close()

    def _disarm_send(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_deadline_passed(self) -> None:
        self._send_deadline = None
        if self.writing_paused:
            self.log_debug("closed a connection whose peer read nothing for %g s", self._send_timeout)
            self._closed.add(("send_timeout",))
            self.abort()


class GuardedServer(web.Server):
    """aiohttp's connection manager with the cap: the oldest idle connection makes room for a new one."""

    def __init__(self, *args: Any, limits: ConnectionLimits, closed: Tally, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.closed = closed  # counts why connections were closed (gateway_connections_closed_total)
        self._open: dict[web.RequestHandler, None] = {}  # oldest first

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = None
        if len(self._open) > self.limits.max_connections:
            victim = self._idlest(handler)
            del self._open[victim]
            # "at_cap": an idle or non-reading one made room; "refused": every other one was mid-request.
            self.closed.add(("refused" if victim is handler else "at_cap",))
            log.debug("at the cap of %d connections: closed one", self.limits.max_connections)
            if isinstance(victim, GuardedHandler):
                victim.abort()
            else:
                victim.force_close()

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        super().connection_lost(handler, exc)

    def __len__(self) -> int:
        return len(self._open)

    def _idlest(self, newcomer: web.RequestHandler) -> web.RequestHandler:
        """The oldest connection whose peer does not read its answers, else the oldest not in the middle of a
        request; the newcomer itself when every other one is busy with a peer that reads."""
        others = [handler for handler in self._open if handler is not newcomer]
        for handler in others:
            if getattr(handler, "not_reading", False):
                return handler
        for handler in others:
            if not getattr(handler, "busy", True):
                return handler
        return newcomer


class GuardedSite(web.SockSite):
    """``web.SockSite`` whose TLS handshakes are bounded by the header deadline (asyncio's default: 60 s)."""

    def __init__(self, runner: web.BaseRunner, sock: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(runner, sock, backlog=limits.accept_batch, **kwargs)
        self._handshake_timeout = limits.header_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        context: ssl.SSLContext | None = self._ssl_context
        timeout = self._handshake_timeout if context else None  # asyncio refuses a handshake timeout without TLS
        self._server = await loop.create_server(
            server, sock=self._sock, ssl=context, backlog=self._backlog, ssl_handshake_timeout=timeout
        )
