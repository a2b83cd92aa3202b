"""The stream work both HTTP/2 client connections share (APNs in apns_connection, FCM in h2_client).

Contract: a connection class lists :class:`H2Streams` before its asyncio protocol base, gives it
``conn`` (an ``H2Connection`` with :data:`LEAN_H2` and a
:class:`~push.providers.hpack_memo.MemoEncoder`), ``transport``, ``loop``, ``streams``,
``window_open`` and ``flush_scheduled``, and implements the hooks (:meth:`closing`,
:meth:`not_processed`, :meth:`result`, :meth:`goaway`, :meth:`protocol_error`; :meth:`released`,
:meth:`written` and :meth:`settings_changed` may stay as they are). In return it gets:

- :meth:`send_body`: DATA frames within the server's window and frame size, waiting for the
  window instead of failing (a request body never raises ``FlowControlError`` half sent);
- :meth:`flush_soon`: the requests of one loop iteration leave in one write;
- :meth:`data_received`: answers matched to requests by stream id (never by a header a re-sent
  message repeats), received DATA acknowledged (or after 64 KiB of answers the server could not
  send any more), an answer nobody waits for any more dropped;
- what a reset or a lost connection means per request: REFUSED_STREAM, and streams above a
  GOAWAY's last stream id, were certainly not processed (:meth:`not_processed`: safe to send
  again); any other end after the request went out is :class:`InFlightLost` (it may have been).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
from h2.exceptions import ProtocolError

logger = logging.getLogger(__name__)

#: Headers are checked where requests are built (lower-case names, no CR/LF/NUL), so h2's per-header
#: validation and normalisation only cost CPU; without normalisation HPACK also indexes a bearer
#: token (the same for up to an hour) once per connection instead of re-encoding it every request.
LEAN_H2 = H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)
#: At most this many concurrent streams per connection (the server's own limit, when lower, wins):
#: h2 walks every stream of a connection each time it opens one, so 300 requests in flight on one
#: connection cost ~10% more CPU per message than the same spread over three (bench/send_profile.py).
STREAMS_PER_CONNECTION = 100
MAX_RESPONSE_BODY = 64 * 1024  # an answer longer than this is cut: APNs's and FCM's are a few hundred bytes


class InFlightLost(Exception):
    """The connection ended after the request was sent and before its answer: it may have arrived."""


@dataclass(slots=True)
class Stream:
    """One request in flight: its answer so far, and the future its sender waits on."""

    future: asyncio.Future[Any]
    label: str = ""  # what the logs call the request (APNs: its apns-id)
    sent: bool = False  # the last DATA frame is queued: from here on the server may have processed it
    status: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; the last of a repeated one
    body: bytearray = field(default_factory=bytearray)


class H2Streams:
    """Mixin: the stream work of an HTTP/2 client connection (see the module's contract)."""

    conn: H2Connection
    transport: asyncio.Transport | None
    loop: asyncio.AbstractEventLoop
    streams: dict[int, Stream]
    window_open: asyncio.Event
    flush_scheduled: bool

    # hooks ----------------------------------------------------------------------------------------

    def closing(self) -> bool:
        """Whether no more requests may go out on this connection."""
        raise NotImplementedError

    def not_processed(self, why: str) -> Exception:
        """The error for a request certainly not processed (the caller may send it again)."""
        raise NotImplementedError

    def result(self, stream: Stream) -> Any:
        """What a complete answer resolves its request's future with."""
        raise NotImplementedError

    def goaway(self, event: ConnectionTerminated) -> None:
        raise NotImplementedError

    def protocol_error(self, exc: ProtocolError) -> None:
        raise NotImplementedError

    def released(self) -> None:
        """A stream is over (answered, reset or abandoned): its slot may be used again."""

    def written(self) -> None:
        """Bytes were just written to the transport."""

    def settings_changed(self, event: RemoteSettingsChanged) -> None:
        """The server's SETTINGS changed (the window is already reopened)."""

    # sending --------------------------------------------------------------------------------------

    async def send_body(self, stream_id: int, body: bytes) -> None:
        """Send the body in DATA frames the server's window and frame size allow, then END_STREAM
        (with an empty body, END_STREAM alone). Raises :meth:`not_processed` if the connection
        goes away first: the request is incomplete, so the server cannot have processed it."""
        offset = 0
        while True:
            if self.closing():
                raise self.not_processed("connection closed before the request body was sent")
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            size = min(window, len(body) - offset)
            last = offset + size == len(body)
            if size > 0 or last:
                self.conn.send_data(stream_id, body[offset : offset + size], end_stream=last)
                offset += size
                if last:
                    self.flush_soon()
                    return
                continue
            self.flush()
            self.window_open.clear()
            await self.window_open.wait()

    def abandon(self, stream_id: int) -> None:
        """Forget a stream nobody waits for any more (cancelled, or failed), resetting it if open."""
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        if not stream.future.done():
            stream.future.cancel()
        if not self.closing():
            with contextlib.suppress(ProtocolError):
                self.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            self.flush_soon()
        self.released()

    def flush_soon(self) -> None:
        """Write what h2 has queued once this loop iteration's other requests have queued theirs:
        a batch leaves in a few TLS records and writes instead of one per request. A request is
        marked sent before its bytes leave, so a connection lost in between reports it as possibly
        delivered, never as safe to send again."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.written()
            self.transport.write(data)

    # receiving ------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.protocol_error(exc)
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                self._on_headers(event)
            elif isinstance(event, DataReceived):
                self._on_data(event)
            elif isinstance(event, StreamEnded):
                self._on_end(event.stream_id or 0)
            elif isinstance(event, StreamReset):
                self._on_reset(event)
            elif isinstance(event, WindowUpdated):
                self.window_open.set()
            elif isinstance(event, RemoteSettingsChanged):
                self.window_open.set()
                self.settings_changed(event)
            elif isinstance(event, ConnectionTerminated):
                self.goaway(event)
                return
        self.flush()

    def _on_headers(self, event: ResponseReceived) -> None:
        stream = self.streams.get(event.stream_id or 0)
        if stream is None:
            return
        for name, value in event.headers or ():
            key, text = bytes(name).decode(), bytes(value).decode()  # h2 without a header encoding
            if key == ":status":
                stream.status = text
            else:
                stream.headers[key] = text

    def _on_data(self, event: DataReceived) -> None:
        stream_id = event.stream_id or 0
        if event.flow_controlled_length:
            with contextlib.suppress(ProtocolError):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        stream = self.streams.get(stream_id)
        if stream is not None and event.data and len(stream.body) < MAX_RESPONSE_BODY:
            stream.body.extend(event.data[: MAX_RESPONSE_BODY - len(stream.body)])

    def _on_end(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        self.released()
        if stream.future.done():
            logger.debug("answer %s for %s arrived after its timeout; dropped", stream.status, stream.label)
            return
        stream.future.set_result(self.result(stream))

    def _on_reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id or 0, None)
        if stream is None:
            return
        self.released()
        if stream.future.done():
            return
        if event.error_code == ErrorCodes.REFUSED_STREAM:
            stream.future.set_exception(self.not_processed("stream refused"))
        else:
            stream.future.set_exception(InFlightLost(f"stream reset by the server ({event.error_code!r})"))

    def fail_sent(self, why: str, unprocessed_above: int | None = None) -> None:
        """Fail every sent request still waiting: those above ``unprocessed_above`` (a GOAWAY's last
        stream id) as not processed, the others as lost in flight. A request still sending its
        body notices the closed connection itself (``window_open`` wakes it)."""
        for stream_id, stream in list(self.streams.items()):
            if not stream.sent or stream.future.done():
                continue
            del self.streams[stream_id]
            if unprocessed_above is not None and stream_id > unprocessed_above:
                stream.future.set_exception(self.not_processed(f"{why}: not processed"))
            else:
                stream.future.set_exception(InFlightLost(f"{why} before the answer"))
        self.window_open.set()


class _Closable(Protocol):
    transport: asyncio.Transport | None
    lost: asyncio.Future[None]

    def close(self) -> None: ...


async def close_all(connections: Sequence[_Closable], grace: float = 2.0) -> None:
    """Close every connection (GOAWAY, then TLS close), wait up to ``grace`` seconds for them to end,
    and abort the transports of those that did not (a peer that never completes the TLS close)."""
    for connection in connections:
        connection.close()
    waiting = [c.lost for c in connections if not c.lost.done()]
    if waiting:
        await asyncio.wait(waiting, timeout=grace)
    for connection in connections:
        if not connection.lost.done() and connection.transport is not None:
            connection.transport.abort()
