"""One client connection: an h2 state machine driven by the transport, answering on its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes

from push.peers.apns.common import GOAWAY_GRACE, INBOX_PATH, MAX_VOIP_PAYLOAD, PLATFORM, Answer, Stream
from push.peers.inbox import now_iso

if TYPE_CHECKING:  # the emulator imports this module
    from push.peers.apns.emulator import ApnsEmulator


class ServerConnection(asyncio.Protocol):
    """One client connection: an h2 state machine driven by the transport, answering on its own."""

    def __init__(self, emulator: ApnsEmulator) -> None:
        self.emulator = emulator
        config = H2Configuration(client_side=False, header_encoding="utf-8")
        self.conn = H2Connection(config=config)
        self.conn.local_settings = _server_settings(emulator.max_concurrent_streams)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        # Bodies waiting for flow-control window: (data, may be split over several DATA frames).
        self.outbox: OrderedDict[int, tuple[bytes, bool]] = OrderedDict()
        self.timers: dict[int, tuple[asyncio.TimerHandle, dict[str, Any]]] = {}
        self.last_handled = 0
        self.client_topic: str | None = None
        self.has_client_cert = False
        self.closed = False
        self.going_away = False  # GOAWAY sent: incoming frames are read and ignored until the close
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.emulator._connections.add(self)
        peercert = transport.get_extra_info("peercert")
        if peercert:
            self.has_client_cert = True
            self.client_topic = _certificate_topic(peercert)
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.abort_pending()
        self.emulator._connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.going_away:
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self.flush()  # h2 has queued a GOAWAY naming the error
            self.close()
            return
        for event in events:
            if self.is_closing():
                return
            if isinstance(event, RequestReceived):
                self.streams[event.stream_id] = Stream(headers=list(event.headers or []))  # type: ignore[arg-type]
            elif isinstance(event, DataReceived):
                self.on_data(event)
            elif isinstance(event, StreamEnded):
                self.on_request(event.stream_id)
            elif isinstance(event, StreamReset):
                self.forget(event.stream_id)
            elif isinstance(event, WindowUpdated | RemoteSettingsChanged):
                self.send_waiting_bodies()
            elif isinstance(event, ConnectionTerminated):
                self.close()
                return
        self.flush()

    # h2 -----------------------------------------------------------------------------------------

    def on_data(self, event: DataReceived) -> None:
        stream_id = event.stream_id
        stream = self.streams.get(stream_id)
        if event.flow_controlled_length:
            with contextlib.suppress(StreamClosedError):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        if stream is None or not event.data:
            return
        if len(stream.body) + len(event.data) > 4 * MAX_VOIP_PAYLOAD:  # keep no more than needed to judge
            stream.oversized = True
        else:
            stream.body.extend(event.data)

    def on_request(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        if _path_of(stream).split("?")[0] == INBOX_PATH:
            self.serve_inbox(stream_id, stream)
            return
        answer, request = self.emulator.decide(stream, self.client_topic, self.has_client_cert)
        record = request.record
        request_id = record["headers"].get("apns-id") or str(uuid.uuid4())
        record["apns_id"] = request_id
        if answer.behaviour == "goaway":
            self.record(record, answer)
            self.goaway(answer.reason or "Shutdown")
            return
        self.last_handled = stream_id
        if answer.behaviour == "slow":
            loop = asyncio.get_running_loop()
            record["delayed"] = self.emulator.slow_delay
            timer = loop.call_later(self.emulator.slow_delay, self.answer_late, stream_id, request_id, answer, record)
            self.timers[stream_id] = (timer, record)
            return
        self.record(record, answer)
        self.respond(stream_id, request_id, answer)

    def answer_late(self, stream_id: int, request_id: str, answer: Answer, record: dict[str, Any]) -> None:
        self.timers.pop(stream_id, None)
        if self.closed:
            return
        self.record(record, answer)
        self.respond(stream_id, request_id, answer)
        self.flush()

    def record(self, record: dict[str, Any], answer: Answer) -> None:
        record["status"] = answer.status
        record["reason"] = answer.reason if answer.behaviour != "goaway" else f"GOAWAY {answer.reason}"
        if answer.timestamp is not None:
            record["timestamp"] = answer.timestamp
        record["received_at"] = now_iso()
        self.emulator.handled += 1
        self.emulator.inbox.add(PLATFORM, record)

    def respond(self, stream_id: int, request_id: str, answer: Answer) -> None:
        assert answer.status is not None
        headers = [(":status", str(answer.status)), ("apns-id", request_id)]
        try:
            if answer.reason is None:
                self.conn.send_headers(stream_id, headers, end_stream=True)
                return
            body: dict[str, Any] = {"reason": answer.reason}
            if answer.timestamp is not None:
                body["timestamp"] = answer.timestamp
            self.conn.send_headers(stream_id, [*headers, ("content-type", "application/json")])
        except (StreamClosedError, ProtocolError):
            return  # the client reset the stream or is going away
        self.outbox[stream_id] = (json.dumps(body, separators=(",", ":")).encode(), False)
        self.send_waiting_bodies()

    def serve_inbox(self, stream_id: int, stream: Stream) -> None:
        """``GET /_emulator/inbox[?limit=N]`` (JSON list, oldest first) and ``DELETE`` (clears it)."""
        method = dict(stream.headers).get(":method")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(_path_of(stream)).query)
        if method == "DELETE":
            self.emulator.inbox.clear()
            body: Any = {"cleared": True}
        elif method == "GET":
            body = self.emulator.inbox.items(PLATFORM)
            limit = query.get("limit", [""])[0]
            if limit.isdigit():
                body = body[-int(limit) :] if int(limit) else []
        else:
            self.respond(stream_id, str(uuid.uuid4()), Answer(405, "MethodNotAllowed"))
            return
        data = json.dumps(body).encode()
        headers = [(":status", "200"), ("content-type", "application/json"), ("content-length", str(len(data)))]
        with contextlib.suppress(StreamClosedError, ProtocolError):
            self.conn.send_headers(stream_id, headers)
            self.outbox[stream_id] = (data, True)
            self.send_waiting_bodies()

    def send_waiting_bodies(self) -> None:
        """Send waiting bodies, in order, as the client's flow-control window allows.

        An APNs error body goes out as exactly one DATA frame, so it waits for a window that holds
        all of it (a real server waits too); an inbox listing may be split.
        """
        for stream_id in list(self.outbox):
            data, splittable = self.outbox[stream_id]
            try:
                window = self.conn.local_flow_control_window(stream_id)
            except (StreamClosedError, ProtocolError):
                del self.outbox[stream_id]
                continue
            if not splittable:
                if window < len(data):
                    return
                self.conn.send_data(stream_id, data, end_stream=True)
                del self.outbox[stream_id]
                continue
            while data and window > 0:
                size = min(window, self.conn.max_outbound_frame_size, len(data))
                self.conn.send_data(stream_id, data[:size], end_stream=size == len(data))
                data, window = data[size:], window - size
            if data:
                self.outbox[stream_id] = (data, True)
                return
            del self.outbox[stream_id]

    def goaway(self, reason: str) -> None:
        """Send GOAWAY, stop handling requests, and close after a grace period.

        Closing at once would make the client's next write fail (EPIPE) before it reads the
        GOAWAY, and it would then think every request in flight might have been processed.
        """
        self.conn.close_connection(
            error_code=ErrorCodes.NO_ERROR,
            additional_data=json.dumps({"reason": reason}).encode(),
            last_stream_id=self.last_handled,
        )
        self.flush()
        self.going_away = True
        self.abort_pending()  # h2 sends nothing more after GOAWAY: delayed answers are lost
        asyncio.get_running_loop().call_later(GOAWAY_GRACE, self.close)

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self.outbox.pop(stream_id, None)
        pending = self.timers.pop(stream_id, None)
        if pending is not None:
            pending[0].cancel()
            self.record(pending[1], Answer(None, "abandoned: the client reset the stream"))

    def abort_pending(self) -> None:
        """Cancel delayed answers; record each as abandoned (its connection is going away)."""
        for timer, record in self.timers.values():
            timer.cancel()
            self.record(record, Answer(None, "abandoned: connection closed before the delayed answer"))
        self.timers.clear()

    def is_closing(self) -> bool:
        return self.closed or self.going_away or self.transport is None or self.transport.is_closing()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        self.abort_pending()
        if self.transport is not None:
            self.transport.close()


def _path_of(stream: Stream) -> str:
    return next((value for name, value in stream.headers if name == ":path"), "")


def _server_settings(max_streams: int) -> Any:
    from h2.settings import Settings

    return Settings(
        client=False,
        initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
        },
    )


def _certificate_topic(peercert: dict[str, Any]) -> str | None:
    """The topic of an APNs client certificate: subject UID, else the common name after ': '."""
    names = {key: value for rdn in peercert.get("subject", ()) for key, value in rdn}
    uid = names.get("userId")
    if uid:
        return str(uid)
    common_name = str(names.get("commonName", ""))
    return common_name.rpartition(": ")[2] or None
