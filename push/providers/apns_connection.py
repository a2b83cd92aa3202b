"""The HTTP/2 connection to APNs that replaces aioapns's own, and the per-endpoint class its pool builds.

Contract: HTTP/2, aioapns and the APNs wire format, nothing of pushgate's messages or error kinds.
:meth:`Connection.send_notification` sends an aioapns ``NotificationRequest`` (an
:class:`ApnsRequest` exactly as given) and returns the answer as a ``NotificationResult``, or
raises ``ConnectionClosed`` (certainly not processed: the pool sends it on another connection) or
:class:`InFlightLost` (it may have been). :func:`connection_class` makes the subclass for one
endpoint, whose connections share one provider token (the library would sign one per connection).

aioapns 4.0 owns TLS, the pool and stream-id allocation; its per-connection protocol is replaced
(``pool.protocol_class``, its one hook) to fix what was measured against a local peer (docs/local-peers.md):

The stream work itself is :mod:`push.providers.h2_streams`, shared with the FCM connection.

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

Speed (bench/send_profile.py): the requests of one loop iteration leave in one write; at most
:data:`STREAMS_PER_CONNECTION` streams share a connection (h2 walks them all for each new one); the
per-request headers are never indexed and the others are encoded by
:class:`~push.providers.hpack_memo.MemoEncoder`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from aioapns import NotificationRequest
from aioapns.common import NotificationResult
from aioapns.connection import APNsBaseClientProtocol, APNsTLSClientProtocol, AuthorizationHeaderProvider
from aioapns.exceptions import ConnectionClosed
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, RemoteSettingsChanged
from h2.exceptions import ProtocolError
from hpack import NeverIndexedHeaderTuple

from push.providers.h2_streams import LEAN_H2, STREAMS_PER_CONNECTION, H2Streams, InFlightLost, Stream
from push.providers.hpack_memo import MemoEncoder

logger = logging.getLogger(__name__)
__all__ = ["STREAMS_PER_CONNECTION", "ApnsRequest", "Connection", "InFlightLost", "connection_class"]


class ApnsRequest(NotificationRequest):
    """A request whose headers and body are sent exactly as given (``apns-expiration`` is absolute)."""

    __slots__ = ("body", "headers")

    def __init__(self, device_token: str, body: bytes, headers: dict[str, str], notification_id: str) -> None:
        super().__init__(device_token, {}, notification_id=notification_id)
        self.body = body
        self.headers = headers


class Connection(H2Streams, APNsTLSClientProtocol):
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
        # Replaced before connection_made sends the preface (LEAN_H2 says why): _request_for
        # already checked every header.
        self.conn = H2Connection(config=LEAN_H2)
        self.conn.encoder = MemoEncoder()  # before the first HEADERS: the tables start empty
        self.streams: dict[int, Stream] = {}
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
        stream = Stream(self.loop.create_future(), label=request.notification_id)
        self.streams[stream_id] = stream
        try:
            await self.send_body(stream_id, body)
        except BaseException:
            # Cancelled (timeout) or the connection went away while the body waited for window:
            # the request is incomplete, so the server cannot have processed it.
            self.abandon(stream_id)
            raise
        stream.sent = True
        # A request cancelled from here on (its timeout) keeps its stream: the late answer
        # frees it, and is dropped.
        result: NotificationResult = await stream.future
        return result

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

    # H2Streams hooks ------------------------------------------------------------------------------

    def not_processed(self, why: str) -> Exception:
        return ConnectionClosed(why)  # the pool sends the request on another connection

    def result(self, stream: Stream) -> NotificationResult:
        result_id = stream.headers.get("apns-id") or stream.label
        if stream.status == "200":
            return NotificationResult(result_id, "200")
        reason, timestamp = _parse_error_body(bytes(stream.body))
        return NotificationResult(result_id, stream.status, description=reason, timestamp=timestamp)

    def released(self) -> None:
        self.free_channels.release()

    def written(self) -> None:
        self.refresh_inactivity_timer()

    def settings_changed(self, event: RemoteSettingsChanged) -> None:
        self.on_remote_settings_changed(event.changed_settings)  # type: ignore[arg-type]
        self._cap_streams()  # the library just set the bound to the server's maximum

    def protocol_error(self, exc: ProtocolError) -> None:
        logger.warning("APNs connection %s: protocol error %s; closing it", self.APNS_SERVER, exc)
        self.flush()
        self.close()

    def goaway(self, event: ConnectionTerminated) -> None:
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
        self._fail("GOAWAY", unprocessed_above=last)
        self.close()

    # the end ------------------------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self.terminated = True
        if self.inactivity_timer:
            self.inactivity_timer.cancel()
        self._discard()
        self._fail(f"connection lost ({exc or 'closed'})")
        type(self).registry.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail(self, why: str, unprocessed_above: int | None = None) -> None:
        self.fail_sent(why, unprocessed_above)
        self.free_channels.destroy(ConnectionClosed(why))

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
