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
per message), and applies what the APNs connection (:mod:`push.providers.apns_connection`) learned
measuring such traffic against local peers (docs/local-peers.md):

- the requests of one loop iteration leave in one write (:meth:`_Connection.flush_soon`);
- at most :data:`STREAMS_PER_CONNECTION` streams share a connection, fewer if the server says so
  (h2 walks every open stream of a connection each time it opens one), and a pool opens up to
  ``max_connections`` connections, one at a time, only when the open ones are full;
- headers go through :class:`~push.providers.hpack_memo.MemoEncoder` with h2's per-header
  validation and normalisation off: a request whose headers are all constant costs one memo
  lookup per header;
- received DATA is acknowledged (or after 64 KiB of answers the server could not send any more),
  and request bodies wait for the server's window instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import NoAvailableStreamIDError, ProtocolError

from push.providers.hpack_memo import MemoEncoder

logger = logging.getLogger(__name__)

LEAN_H2 = H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)
#: The most streams one connection carries at once (the server's own limit, when lower, wins).
STREAMS_PER_CONNECTION = 100
MAX_RESPONSE_BODY = 64 * 1024  # an answer longer than this is cut: FCM's are a few hundred bytes
#: A connection idle for longer than this is looked at before it is used again (see _Connection.stale).
IDLE_CHECK_SECONDS = 1.0

Headers = Sequence[tuple[str, str]]


class NotProcessed(Exception):
    """The request was certainly not processed by the server: it may be sent again."""


class InFlightLost(Exception):
    """The connection ended after the request was sent and before its answer: it may have arrived."""


class ConnectFailed(Exception):
    """No connection could be opened (refused, unreachable, TLS, or no HTTP/2 by ALPN)."""


@dataclass(frozen=True, slots=True)
class H2Response:
    status: int
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes


@dataclass(slots=True)
class _Stream:
    future: asyncio.Future[H2Response]
    sent: bool = False  # the last DATA frame is queued: from here on the server may have processed it
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection. The pool reserves a stream (:attr:`in_use`) before :meth:`request`."""

    def __init__(self, pool: H2Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.conn = H2Connection(config=LEAN_H2)
        self.conn.encoder = MemoEncoder()  # before the first HEADERS: the tables start empty
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
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
        self._close(InFlightLost, f"connection lost ({exc or 'closed'})")
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(ProtocolError):
                self.conn.close_connection()
            self.flush()
            self.transport.close()

    def _close(self, lost: type[Exception], why: str, unprocessed_above: int | None = None) -> None:
        """No new streams; fail the sent requests still waiting, as unprocessed above the given id."""
        self.closed = True
        self.pool.forget(self)
        for stream_id, stream in list(self.streams.items()):
            if not stream.sent or stream.future.done():
                continue  # a request still sending its body notices the closed connection itself
            del self.streams[stream_id]
            if unprocessed_above is not None and stream_id > unprocessed_above:
                stream.future.set_exception(NotProcessed(f"{why}: not processed"))
            else:
                stream.future.set_exception(lost(f"{why} before the answer"))
        self.window_open.set()

    # sending --------------------------------------------------------------------------------------

    async def request(self, headers: Headers, body: bytes) -> H2Response:
        try:
            if self.closed or self.transport is None or self.transport.is_closing():
                raise NotProcessed("connection closing")
            try:
                stream_id = self.conn.get_next_available_stream_id()
                self.conn.send_headers(stream_id, headers, end_stream=not body)
            except NoAvailableStreamIDError as exc:
                self.closed = True
                self.pool.forget(self)
                raise NotProcessed("connection out of stream ids") from exc
            except ProtocolError as exc:  # h2 saw a GOAWAY first: nothing went out
                raise NotProcessed(f"connection closed: {exc}") from exc
            stream = _Stream(self.loop.create_future())
            self.streams[stream_id] = stream
            try:
                await self._send_body(stream_id, body)
                stream.sent = True
                return await stream.future
            except BaseException:
                self._abandon(stream_id)
                raise
        finally:
            self.in_use -= 1
            self.pool.stream_released()

    async def _send_body(self, stream_id: int, body: bytes) -> None:
        """Send the body in DATA frames the server's window and frame size allow, then END_STREAM."""
        offset = 0
        while offset < len(body):
            if self.closed:
                raise NotProcessed("connection closed before the request body was sent")
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            size = min(window, len(body) - offset)
            if size > 0:
                offset += size
                self.conn.send_data(stream_id, body[offset - size : offset], end_stream=offset == len(body))
                continue
            self.flush()
            self.window_open.clear()
            await self.window_open.wait()
        self.flush_soon()

    def _abandon(self, stream_id: int) -> None:
        """Forget a stream nobody waits for any more (cancelled, or failed), resetting it if open."""
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        if not stream.future.done():
            stream.future.cancel()
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(ProtocolError):
                self.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            self.flush_soon()

    def flush_soon(self) -> None:
        """Write what h2 has queued once this loop iteration's other requests have queued theirs."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.last_active = self.loop.time()
            self.transport.write(data)

    # receiving ------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            logger.warning("HTTP/2 connection to %s: protocol error %s; closing it", self.pool.host, exc)
            self._close(InFlightLost, f"protocol error {exc}")
            self.close()
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                self._on_headers(event)
            elif isinstance(event, DataReceived):
                self._on_data(event)
            elif isinstance(event, StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, StreamReset):
                self._on_reset(event)
            elif isinstance(event, WindowUpdated):
                self.window_open.set()
            elif isinstance(event, RemoteSettingsChanged):
                if not self.settings.done():
                    self.settings.set_result(None)
                self.window_open.set()
                self.pool.stream_released()  # the server may allow more streams now
            elif isinstance(event, ConnectionTerminated):
                self._on_goaway(event)
                return
        self.flush()

    def _on_headers(self, event: ResponseReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        for name, value in event.headers or ():
            key, text = bytes(name).decode(), bytes(value).decode()
            if key == ":status":
                stream.status = int(text) if text.isdigit() else 0
            else:
                stream.headers[key] = text

    def _on_data(self, event: DataReceived) -> None:
        assert event.stream_id is not None
        self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is not None and event.data and len(stream.body) < MAX_RESPONSE_BODY:
            stream.body.extend(event.data[: MAX_RESPONSE_BODY - len(stream.body)])

    def _on_end(self, stream_id: int | None) -> None:
        stream = self.streams.pop(stream_id or 0, None)
        if stream is not None and not stream.future.done():
            stream.future.set_result(H2Response(stream.status, stream.headers, bytes(stream.body)))

    def _on_reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id or 0, None)
        if stream is None or stream.future.done():
            return
        if event.error_code == ErrorCodes.REFUSED_STREAM:
            stream.future.set_exception(NotProcessed("stream refused"))
        else:
            stream.future.set_exception(InFlightLost(f"stream reset by the server ({event.error_code!r})"))

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        # h2 ends the connection at the first GOAWAY, graceful or not, so every answer still due
        # is lost; those above last_stream_id were not processed (RFC 9113, 6.8).
        last = event.last_stream_id if event.last_stream_id is not None else 0
        logger.info("HTTP/2 GOAWAY from %s: code=%r last_stream_id=%s", self.pool.host, event.error_code, last)
        self._close(InFlightLost, "GOAWAY", unprocessed_above=last)
        self.close()


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
        for connection in connections:
            connection.close()
        waiting = [c.lost for c in connections if not c.lost.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=2)
        for connection in connections:
            if not connection.lost.done() and connection.transport is not None:
                connection.transport.abort()

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
        except TimeoutError as exc:
            for connection in made:
                connection.close()
            raise ConnectFailed(f"no connection to {self.host}:{self.port} within {self.connect_timeout:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        except BaseException:  # cancelled
            for connection in made:
                connection.close()
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
