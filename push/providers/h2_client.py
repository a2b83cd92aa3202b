"""A lean HTTP/2 client for one origin: a few TLS connections, many streams each, nothing else.

Contract: :meth:`H2Pool.request` sends one request (its headers exactly as given, pseudo-headers
included and already valid: nothing is checked or normalised again) and returns the answer as an
:class:`H2Response`. It raises :class:`NotProcessed` when the request certainly was not processed
(refused stream, above a GOAWAY's last stream id, connection gone before the request was
complete) after trying ``attempts`` connections, :class:`InFlightLost` when the connection ended
after the request went out (it may have been processed: never sent again behind the caller's
back), and :class:`ConnectFailed` when no connection could be opened. Cancelling a request (the
caller's timeout) resets its stream, so a slow server never holds a stream the pool could reuse.
Create and use a pool on one event loop.

It is for services whose requests are small, independent and numerous (FCM HTTP v1: one JSON POST
per message). The stream work (bodies within the window, one write per loop iteration, answers by
stream id, DATA acknowledged, resets and GOAWAY) is the APNs connection's too
(:mod:`push.providers.h2_streams`); this module adds the pool: at most
:data:`~push.providers.h2_streams.STREAMS_PER_CONNECTION` streams a connection, fewer if the
server's SETTINGS say so (a connection is used only once they arrived), up to ``max_connections``
connections opened one at a time and only when the open ones are full, and none reused once it is
closing or, idle, has unread bytes waiting (see :meth:`_Connection.stale`). Headers go through
:class:`~push.providers.hpack_memo.MemoEncoder`: a request whose headers are all constant costs one
memo lookup per header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from h2.connection import H2Connection
from h2.events import ConnectionTerminated, RemoteSettingsChanged
from h2.exceptions import NoAvailableStreamIDError, ProtocolError

from push.providers.h2_streams import LEAN_H2, STREAMS_PER_CONNECTION, H2Streams, InFlightLost, Stream, close_all
from push.providers.hpack_memo import MemoEncoder

logger = logging.getLogger(__name__)

#: A connection idle for longer than this is looked at before it is used again (see _Connection.stale).
IDLE_CHECK_SECONDS = 1.0

Headers = Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]]
__all__ = ["ConnectFailed", "H2Pool", "H2Response", "InFlightLost", "NotProcessed"]


class NotProcessed(Exception):
    """The request was certainly not processed by the server: it may be sent again."""


class ConnectFailed(Exception):
    """No connection could be opened (refused, unreachable, TLS, or no HTTP/2 by ALPN)."""


@dataclass(frozen=True, slots=True)
class H2Response:
    status: int
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes


class _Connection(H2Streams, asyncio.Protocol):
    """One HTTP/2 connection. The pool reserves a stream (:attr:`in_use`) before :meth:`request`."""

    def __init__(self, pool: H2Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.conn = H2Connection(config=LEAN_H2)
        self.conn.encoder = MemoEncoder()  # before the first HEADERS: the tables start empty
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.in_use = 0
        self.closed = False  # GOAWAY, lost, or out of stream ids: no new streams
        self.flush_scheduled = False
        self.window_open = asyncio.Event()
        self.settings: asyncio.Future[None] = self.loop.create_future()  # the server's first SETTINGS
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.last_active = self.loop.time()

    @property
    def free(self) -> int:
        if self.closed:
            return 0
        return min(self.conn.remote_settings.max_concurrent_streams, STREAMS_PER_CONNECTION) - self.in_use

    def stale(self) -> bool:
        """Whether this connection is closing, or idle with bytes waiting that the loop has not read
        yet. After an idle spell such bytes are almost always its end: servers close idle
        connections (hypercorn after 5 s, without GOAWAY), and a loop that was busy elsewhere (a
        long database call, a test between two sends) has not seen it yet. A request written there
        would be lost in flight although never processed; the pool retires such a connection."""
        if self.transport is None or self.transport.is_closing():
            return True  # the end was read already; connection_lost is on its way
        if self.in_use or self.loop.time() - self.last_active < IDLE_CHECK_SECONDS:
            return False
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    # connection -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            self.closed = True  # opening fails: the pool reports it (see H2Pool._open)
            return
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost ({exc or 'closed'})")
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(ProtocolError):
                self.conn.close_connection()
            self.flush()
            self.transport.close()

    def _end(self, why: str, unprocessed_above: int | None = None) -> None:
        """No new streams; fail the sent requests still waiting."""
        self.closed = True
        self.pool.forget(self)
        self.fail_sent(why, unprocessed_above)

    # H2Streams hooks ------------------------------------------------------------------------------

    def closing(self) -> bool:
        return self.closed or self.transport is None or self.transport.is_closing()

    def not_processed(self, why: str) -> Exception:
        return NotProcessed(why)

    def result(self, stream: Stream) -> H2Response:
        return H2Response(int(stream.status) if stream.status.isdigit() else 0, stream.headers, bytes(stream.body))

    def written(self) -> None:
        self.last_active = self.loop.time()

    def settings_changed(self, event: RemoteSettingsChanged) -> None:
        if not self.settings.done():
            self.settings.set_result(None)
        self.pool.stream_released()  # the server may allow more streams now

    def goaway(self, event: ConnectionTerminated) -> None:
        # h2 ends the connection at the first GOAWAY, graceful or not, so every answer still due
        # is lost; those above last_stream_id were not processed (RFC 9113, 6.8).
        last = event.last_stream_id if event.last_stream_id is not None else 0
        logger.info("HTTP/2 GOAWAY from %s: code=%r last_stream_id=%s", self.pool.host, event.error_code, last)
        self._end("GOAWAY", unprocessed_above=last)
        self.close()

    def protocol_error(self, exc: ProtocolError) -> None:
        logger.warning("HTTP/2 connection to %s: protocol error %s; closing it", self.pool.host, exc)
        self._end(f"protocol error {exc}")
        self.close()

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        super().data_received(data)

    # sending --------------------------------------------------------------------------------------

    async def request(self, headers: Headers, body: bytes) -> H2Response:
        try:
            if self.closing():
                raise NotProcessed("connection closing")
            try:
                stream_id = self.conn.get_next_available_stream_id()
                self.conn.send_headers(stream_id, headers)
            except NoAvailableStreamIDError as exc:
                self.closed = True
                self.pool.forget(self)
                raise NotProcessed("connection out of stream ids") from exc
            except ProtocolError as exc:  # h2 saw a GOAWAY first: nothing went out
                raise NotProcessed(f"connection closed: {exc}") from exc
            stream = Stream(self.loop.create_future())
            self.streams[stream_id] = stream
            try:
                await self.send_body(stream_id, body)
                stream.sent = True
                response: H2Response = await stream.future
                return response
            except BaseException:
                self.abandon(stream_id)  # cancelled (a timeout) or failed: the stream is of no use
                raise
        finally:
            self.in_use -= 1
            self.pool.stream_released()


class H2Pool:
    """Up to ``max_connections`` HTTP/2 connections to ``host:port`` over TLS with ``context``
    (ALPN ``h2``). A request waits for a free stream; ``connect_timeout`` bounds each opening."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        max_connections: int = 4,
        connect_timeout: float = 10.0,
        attempts: int = 3,
    ) -> None:
        context.set_alpn_protocols(["h2"])
        self.host = host
        self.port = port
        self.context = context
        self.max_connections = max(1, max_connections)
        self.connect_timeout = connect_timeout
        self.attempts = max(1, attempts)
        self.loop = asyncio.get_running_loop()
        self.connections: list[_Connection] = []
        self._all: set[_Connection] = set()  # pooled ones and any still closing
        self._opening = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> int:
        """Streams the pool may have open at once."""
        return self.max_connections * STREAMS_PER_CONNECTION

    async def request(self, headers: Headers, body: bytes) -> H2Response:
        for attempt in range(1, self.attempts + 1):
            connection = await self._reserve()
            try:
                return await connection.request(headers, body)
            except NotProcessed:
                if attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        connections = list(self._all)
        self.connections.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectFailed("the pool is closed"))
        await close_all(connections)

    # streams and connections ----------------------------------------------------------------------

    async def _reserve(self) -> _Connection:
        """A connection with a stream reserved for the caller: an open one with room, else a new
        one (one opening at a time, up to max_connections), else the next stream released."""
        while True:
            for connection in list(self.connections):
                if connection.free > 0:
                    if connection.stale():
                        connection.close()
                        self.forget(connection)
                        continue
                    connection.in_use += 1
                    return connection
            if not self._opening and len(self.connections) < self.max_connections:
                connection = await self._open()
                connection.in_use += 1
                return connection
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake(1)  # woken, then cancelled before it could use the stream: pass it on
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                raise

    async def _open(self) -> _Connection:
        self._opening = True
        try:
            connection = await self._connect()
        except ConnectFailed as exc:
            if not self.connections:  # they waited for this connection: one failure answers them all
                self._fail_waiters(exc)
            raise
        except BaseException:
            self._wake(1)  # the opener was cancelled (its timeout): another waiter opens instead
            raise
        finally:
            self._opening = False
        self.connections.append(connection)
        self._wake(connection.free)  # its free streams, and one waiter more to open the next if it is full
        return connection

    async def _connect(self) -> _Connection:
        made: list[_Connection] = []

        def factory() -> _Connection:
            made.append(_Connection(self))
            return made[-1]

        try:
            async with asyncio.timeout(self.connect_timeout):
                await self.loop.create_connection(factory, self.host, self.port, ssl=self.context)
                if not made[0].closed:  # until the server's SETTINGS, its limits are unknown
                    await asyncio.wait([made[0].settings, made[0].lost], return_when=asyncio.FIRST_COMPLETED)
        except BaseException as exc:  # also cancelled: no half-open connection is left behind
            for connection in made:
                connection.close()
            if isinstance(exc, TimeoutError):
                raise ConnectFailed(
                    f"no connection to {self.host}:{self.port} within {self.connect_timeout:g} s"
                ) from exc
            if isinstance(exc, OSError | ssl.SSLError):
                raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            raise
        [connection] = made
        if connection.closed:
            connection.close()
            if connection.lost.done():
                raise ConnectFailed(f"{self.host}:{self.port} closed the connection before its SETTINGS")
            raise ConnectFailed(f"{self.host}:{self.port} did not agree to HTTP/2 (ALPN)")
        self._all.add(connection)
        connection.lost.add_done_callback(lambda _: self._all.discard(connection))
        return connection

    def forget(self, connection: _Connection) -> None:
        """A connection takes no new streams: requests waiting for one may open another."""
        if connection in self.connections:
            self.connections.remove(connection)
            self._wake(len(self._waiters))

    def stream_released(self) -> None:
        self._wake(1)

    def _wake(self, count: int) -> None:
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def _fail_waiters(self, error: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
