"""The HTTP/2 connection to APNs that replaces aioapns's own, and the per-endpoint class its pool builds.

Contract: HTTP/2, aioapns and the APNs wire format, nothing of pushgate's messages or error kinds.
:meth:`Connection.send_notification` sends an aioapns ``NotificationRequest`` (an
:class:`ApnsRequest` exactly as given) and returns the answer as a ``NotificationResult``, or
raises ``ConnectionClosed`` (certainly not processed: the pool sends it on another connection) or
:class:`InFlightLost` (it may have been). :func:`connection_class` makes the subclass for one
endpoint, whose connections share one provider token (the library would sign one per connection).

aioapns 4.0 owns TLS, the pool and stream-id allocation; its per-connection protocol is replaced
(``pool.protocol_class``, its one hook) to fix what was measured against a local peer (docs/local-peers.md):

1. *Late responses.* When ``asyncio.wait_for`` gives up on a request, the library keeps its
   cancelled future; the late answer then raises ``InvalidStateError`` inside ``data_received``,
   the connection dies and the pool re-sends every other request in flight on it (duplicates).
   Here answers are matched to requests by stream id (never by ``apns-id``, which repeats when a
   message is re-sent) and an answer to a request nobody waits for any more is dropped.
2. *GOAWAY.* The library keeps using a connection between GOAWAY and its close, and ``h2``
   raises a raw ``ProtocolError`` on the next send. Here a GOAWAY removes the connection from the
   pool at once; a request never sent, or whose stream is above the GOAWAY's ``last_stream_id``
   (not processed, by the HTTP/2 rules), raises ``ConnectionClosed``; one that may have been
   processed raises :class:`InFlightLost`, never sent again behind the caller's back.
3. *Flow control.* The library never acknowledges received DATA, so after about 64 KiB of error
   bodies on one connection (some 2,400 ``BadDeviceToken`` answers) the server cannot answer any
   more and every request times out. Here received data is acknowledged; request bodies wait for
   the server's window instead of raising ``FlowControlError`` after their HEADERS went out.

Speed (bench/send_profile.py): the requests of one loop iteration leave in one write
(:meth:`Connection.flush_soon`); at most :data:`STREAMS_PER_CONNECTION` streams share a connection
(h2 walks them all for each new one); the per-request headers are never indexed and the others
are encoded by :class:`~push.providers.hpack_memo.MemoEncoder`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from aioapns import NotificationRequest
from aioapns.common import NotificationResult
from aioapns.connection import APNsBaseClientProtocol, APNsTLSClientProtocol, AuthorizationHeaderProvider
from aioapns.exceptions import ConnectionClosed
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
from hpack import NeverIndexedHeaderTuple

from push.providers.hpack_memo import MemoEncoder

logger = logging.getLogger(__name__)
_LEAN_H2 = H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)

MAX_RESPONSE_BODY = 64 * 1024
#: At most this many concurrent streams per connection (the server allows up to its own
#: MAX_CONCURRENT_STREAMS, 1000 at Apple): h2 walks every stream of a connection each time it opens
#: one, so 300 requests in flight on one connection cost ~10% more CPU per message than the same
#: spread over three (bench/send_profile.py: 0.24 vs 0.22 ms a message on the loop).
STREAMS_PER_CONNECTION = 100


class InFlightLost(Exception):
    """The connection ended after the request was sent and before its answer: it may have arrived."""


class ApnsRequest(NotificationRequest):
    """A request whose headers and body are sent exactly as given (``apns-expiration`` is absolute)."""

    __slots__ = ("body", "headers")

    def __init__(self, device_token: str, body: bytes, headers: dict[str, str], notification_id: str) -> None:
        super().__init__(device_token, {}, notification_id=notification_id)
        self.body = body
        self.headers = headers


@dataclass
class _Pending:
    request_id: str
    future: asyncio.Future[NotificationResult]
    sent: bool = False  # END_STREAM queued (flush_soon): from here on the server may have processed it
    status: str = ""
    response_id: str = ""
    body: bytearray = field(default_factory=bytearray)


class Connection(APNsTLSClientProtocol):
    """One HTTP/2 connection to APNs. Subclassed per provider with ``APNS_SERVER``/``APNS_PORT``."""

    shared_auth: ClassVar[AuthorizationHeaderProvider | None] = None
    registry: ClassVar[set[Connection]]

    def __init__(
        self,
        apns_topic: str,
        loop: asyncio.AbstractEventLoop | None = None,
        on_connection_lost: Callable[[APNsBaseClientProtocol], Any] | None = None,
        auth_provider: AuthorizationHeaderProvider | None = None,
    ) -> None:
        super().__init__(apns_topic, loop, on_connection_lost, self.shared_auth or auth_provider)
        # Replaced before connection_made sends the preface. _request_for already checked every
        # header (lower-case names, no CR/LF/NUL), so h2's per-header validation and
        # normalisation only cost CPU; without normalisation HPACK also indexes the provider
        # JWT (the same for up to an hour) once per connection instead of re-encoding its ~200
        # bytes as a never-indexed literal in every request.
        self.conn = H2Connection(config=_LEAN_H2)
        self.conn.encoder = MemoEncoder()  # before the first HEADERS: the tables start empty
        self.pending: dict[int, _Pending] = {}
        self._cap_streams()
        self.flush_scheduled = False
        self.terminated = False
        self.discarded = False
        self.window_open = asyncio.Event()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        type(self).registry.add(self)

    # sending ------------------------------------------------------------------------------------

    @property
    def is_busy(self) -> bool:
        return self.terminated or self.free_channels.is_busy

    def _cap_streams(self) -> None:
        """Use at most STREAMS_PER_CONNECTION of the streams the server allows."""
        self.free_channels.bound = min(self.free_channels.bound, STREAMS_PER_CONNECTION)

    def closing(self) -> bool:
        return self.terminated or self.transport is None or self.transport.is_closing()

    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        if self.closing():
            self._discard()  # or the pool would hand out this connection again at once
            raise ConnectionClosed("connection is closing")  # nothing sent: the pool tries another one
        stream_id = await self.free_channels.acquire()
        if self.closing():
            self._discard()
            raise ConnectionClosed("connection is closing")
        body, headers = self._encode(request)
        try:
            self.conn.send_headers(stream_id=stream_id, headers=headers)
        except ProtocolError as exc:  # h2 saw the GOAWAY first: nothing went out
            self.free_channels.release()
            raise ConnectionClosed(f"connection closed: {exc}") from exc
        pending = _Pending(request.notification_id, self.loop.create_future())
        self.pending[stream_id] = pending
        try:
            await self._send_body(stream_id, body)
        except BaseException:
            # Cancelled (timeout) or the connection went away while the body waited for window:
            # the request is incomplete, so the server cannot have processed it.
            self._abandon(stream_id)
            raise
        pending.sent = True
        return await pending.future

    def _encode(self, request: NotificationRequest) -> tuple[bytes, list[tuple[str, str]]]:
        authority = self.APNS_SERVER if self.APNS_PORT == 443 else f"{self.APNS_SERVER}:{self.APNS_PORT}"
        # The two fields unique to each request are never indexed: added to the HPACK dynamic
        # table, each would evict an older entry, so the table would churn on every request and
        # the constant fields (topic, push type, provider token) would be re-sent as literals
        # and searched for in a long table instead of encoded as one index byte.
        headers = [
            (":method", "POST"),
            (":scheme", "https"),
            _never_indexed(":path", f"/3/device/{request.device_token}"),
            (":authority", authority),
            _never_indexed("apns-id", request.notification_id),
        ]
        if isinstance(request, ApnsRequest):
            body = request.body
            extra = dict(request.headers)
        else:  # a plain aioapns request, as the library would send it
            body = json.dumps(request.message, ensure_ascii=False, separators=(",", ":")).encode()
            extra = _library_headers(request)
        extra.setdefault("apns-topic", request.apns_topic or self.apns_topic)
        headers.extend(extra.items())
        if self.auth_provider is not None:
            headers.append(("authorization", self.auth_provider.get_header()))
        return body, headers

    async def _send_body(self, stream_id: int, body: bytes) -> None:
        """Send the body in DATA frames the server's window and frame size allow, then END_STREAM."""
        offset = 0
        while True:
            if self.closing():
                raise ConnectionClosed("connection closed before the request body was sent")
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

    def _abandon(self, stream_id: int) -> None:
        pending = self.pending.pop(stream_id, None)
        if pending is None:
            return
        if not pending.future.done():
            pending.future.cancel()
        if not self.closing():
            with contextlib.suppress(ProtocolError):
                self.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            self.flush()
        self.free_channels.release()

    def flush_soon(self) -> None:
        """Write what h2 has queued once this loop iteration's other requests have queued theirs:
        a batch leaves in a few TLS records and writes instead of one per request. A request is
        marked sent before its bytes leave, so a connection lost in between reports it as possibly
        delivered (retried by the engine), never as safe to resend behind its back."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        data = self.conn.data_to_send()
        if data and not self.closing():
            self.refresh_inactivity_timer()
            assert self.transport is not None
            self.transport.write(data)

    # receiving ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            logger.warning("APNs connection %s: protocol error %s; closing it", self.APNS_SERVER, exc)
            self.flush()
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
            elif isinstance(event, RemoteSettingsChanged):
                self.on_remote_settings_changed(event.changed_settings)  # type: ignore[arg-type]
                self._cap_streams()  # the library just set the bound to the server's maximum
                self.window_open.set()
            elif isinstance(event, WindowUpdated):
                self.window_open.set()
            elif isinstance(event, ConnectionTerminated):
                self._on_goaway(event)
                return
        self.flush()

    def _on_headers(self, event: ResponseReceived) -> None:
        pending = self.pending.get(event.stream_id)
        if pending is None:
            return
        for name, value in event.headers or ():
            key, text = bytes(name).decode(), bytes(value).decode()  # aioapns's h2 has no header encoding
            if key == ":status":
                pending.status = text
            elif key == "apns-id":
                pending.response_id = text

    def _on_data(self, event: DataReceived) -> None:
        stream_id = event.stream_id
        if event.flow_controlled_length:
            # aioapns never does this: without it the server runs out of window for error bodies.
            with contextlib.suppress(ProtocolError):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        pending = self.pending.get(stream_id)
        if pending is not None and event.data and len(pending.body) < MAX_RESPONSE_BODY:
            pending.body.extend(event.data)

    def _on_end(self, stream_id: int) -> None:
        pending = self.pending.pop(stream_id, None)
        if pending is None:
            return
        self.free_channels.release()
        if pending.future.done():
            logger.debug("APNs answer %s for %s arrived after its timeout; dropped", pending.status, pending.request_id)
            return
        result_id = pending.response_id or pending.request_id
        if pending.status == "200":
            pending.future.set_result(NotificationResult(result_id, "200"))
            return
        reason, timestamp = _parse_error_body(bytes(pending.body))
        result = NotificationResult(result_id, pending.status, description=reason, timestamp=timestamp)
        pending.future.set_result(result)

    def _on_reset(self, event: StreamReset) -> None:
        pending = self.pending.pop(event.stream_id, None)
        if pending is None:
            return
        self.free_channels.release()
        if pending.future.done():
            return
        if event.error_code == ErrorCodes.REFUSED_STREAM:
            pending.future.set_exception(ConnectionClosed("stream refused"))  # not processed: safe to resend
        else:
            pending.future.set_exception(InFlightLost(f"stream reset by the server ({event.error_code})"))

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        last = event.last_stream_id if event.last_stream_id is not None else 0
        logger.info(
            "APNs GOAWAY from %s: code=%s last_stream_id=%s data=%r",
            self.APNS_SERVER,
            event.error_code,
            last,
            event.additional_data,
        )
        self.terminated = True
        self._discard()
        self._fail_pending(lambda stream_id: stream_id > last, "GOAWAY")
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.terminated = True
        if self.inactivity_timer:
            self.inactivity_timer.cancel()
        self._discard()
        self._fail_pending(lambda stream_id: False, f"connection lost ({exc or 'closed'})")
        type(self).registry.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail_pending(self, unprocessed: Callable[[int], bool], why: str) -> None:
        """Fail every sent request still waiting: unprocessed ones may go out again, the others not."""
        for stream_id, pending in list(self.pending.items()):
            if not pending.sent or pending.future.done():
                continue  # a request still sending its body notices the closed connection itself
            del self.pending[stream_id]
            if unprocessed(stream_id):
                pending.future.set_exception(ConnectionClosed(f"{why}: not processed"))
            else:
                pending.future.set_exception(InFlightLost(f"{why} before the answer"))
        self.free_channels.destroy(ConnectionClosed(why))
        self.window_open.set()

    def _discard(self) -> None:
        if not self.discarded:
            self.discarded = True
            if self.on_connection_lost is not None:
                self.on_connection_lost(self)


def _never_indexed(name: str, value: str) -> tuple[str, str]:
    """A header h2 passes to HPACK as a never-indexed literal (kept out of the dynamic table)."""
    return cast("tuple[str, str]", NeverIndexedHeaderTuple(name, value))


def _library_headers(request: NotificationRequest) -> dict[str, str]:
    headers: dict[str, str] = {}
    if request.time_to_live is not None:
        headers["apns-expiration"] = str(int(datetime.now(UTC).timestamp()) + request.time_to_live)
    if request.priority is not None:
        headers["apns-priority"] = str(request.priority)
    if request.collapse_key is not None:
        headers["apns-collapse-id"] = request.collapse_key
    if request.push_type is not None:
        headers["apns-push-type"] = request.push_type.value
    return headers


def _parse_error_body(body: bytes) -> tuple[str, int | None]:
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return "", None
    if not isinstance(data, dict):
        return "", None
    reason, timestamp = data.get("reason"), data.get("timestamp")
    return (reason if isinstance(reason, str) else ""), (timestamp if isinstance(timestamp, int) else None)


def connection_class(host: str, port: int, auth: AuthorizationHeaderProvider | None) -> type[Connection]:
    attributes = {"APNS_SERVER": host, "APNS_PORT": port, "shared_auth": auth, "registry": set()}
    return cast("type[Connection]", type("ApnsConnection", (Connection,), attributes))
