"""Transports: one asyncio protocol per connection, HTTP/2 (h2) or HTTP/1.1 (h11) by ALPN/preface."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h11

from push.peers.fcm.common import MAX_CONCURRENT_STREAMS, Reply
from push.peers.fcm.peer import FcmPeer

if TYPE_CHECKING:  # the server imports this module
    from push.peers.fcm.server import FcmEmulator

_H2_PREFACE = b"PRI * HTTP/2.0"


class Connection(asyncio.Protocol):
    def __init__(self, server: FcmEmulator) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._impl: _Http2 | _Http1 | None = None
        self._early = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn == "h2":
            self._impl = _Http2(self._server.peer, transport)
        elif alpn == "http/1.1":
            self._impl = _Http1(self._server.peer, transport)

    def data_received(self, data: bytes) -> None:
        if self._impl is None:  # no ALPN: decide by the first bytes
            self._early += data
            if len(self._early) < len(_H2_PREFACE) and _H2_PREFACE.startswith(self._early):
                return
            assert self._transport is not None
            is_h2 = self._early.startswith(_H2_PREFACE)
            self._impl = (
                _Http2(self._server.peer, self._transport) if is_h2 else _Http1(self._server.peer, self._transport)
            )
            data, self._early = self._early, b""
        self._impl.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server.connections.discard(self._transport)
        if self._impl is not None:
            self._impl.connection_lost()


class _Http2:
    def __init__(self, peer: FcmPeer, transport: asyncio.Transport) -> None:
        self._peer = peer
        self._transport = transport
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self._requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        self._outgoing: dict[int, memoryview] = {}  # response bodies waiting for flow-control window
        self._timers: dict[int, asyncio.TimerHandle] = {}
        # MAX_CONCURRENT_STREAMS goes in the very first SETTINGS frame
        # (docs/local-peers.md, "HTTP/2 peers and clients built on h2").
        self._conn.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
            }
        )
        self._conn.initiate_connection()
        self._conn.increment_flow_control_window(1 << 24)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()
            self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = cast(list[tuple[str, str]], event.headers or [])  # str: header_encoding is set
                self._requests[event.stream_id] = (dict(headers), bytearray())
            elif isinstance(event, h2.events.DataReceived):
                stream_id = event.stream_id
                if stream_id in self._requests:
                    self._requests[stream_id][1].extend(event.data or b"")
                self._conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._dispatch(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._forget(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated):
                for stream_id in list(self._outgoing):
                    self._send_body(stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._flush()
                self._transport.close()
                return
        self._flush()

    def _dispatch(self, stream_id: int) -> None:
        request = self._requests.pop(stream_id, None)
        if request is None:
            return
        headers, body = request
        reply = self._peer.handle(headers.get(":method", ""), headers.get(":path", ""), headers, bytes(body))
        if reply.delay:
            loop = asyncio.get_running_loop()
            self._timers[stream_id] = loop.call_later(reply.delay, self._respond_later, stream_id, reply)
        else:
            self._respond(stream_id, reply)

    def _respond_later(self, stream_id: int, reply: Reply) -> None:
        self._timers.pop(stream_id, None)
        self._respond(stream_id, reply)
        self._flush()

    def _respond(self, stream_id: int, reply: Reply) -> None:
        headers = [
            (":status", str(reply.status)),
            ("content-type", "application/json; charset=UTF-8"),
            ("content-length", str(len(reply.body))),
            *reply.headers,
        ]
        try:
            self._conn.send_headers(stream_id, headers)
        except h2.exceptions.H2Error:  # the client reset or the connection closed meanwhile
            return
        self._outgoing[stream_id] = memoryview(reply.body)
        self._send_body(stream_id)

    def _send_body(self, stream_id: int) -> None:
        data = self._outgoing[stream_id]
        try:
            while data:
                size = min(
                    len(data), self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size
                )
                if size <= 0:
                    self._outgoing[stream_id] = data
                    return
                self._conn.send_data(stream_id, data[:size].tobytes(), end_stream=size == len(data))
                data = data[size:]
        except h2.exceptions.H2Error:
            pass
        self._outgoing.pop(stream_id, None)

    def _forget(self, stream_id: int) -> None:
        self._requests.pop(stream_id, None)
        self._outgoing.pop(stream_id, None)
        timer = self._timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def connection_lost(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class _Http1:
    def __init__(self, peer: FcmPeer, transport: asyncio.Transport) -> None:
        self._peer = peer
        self._transport = transport
        self._conn = h11.Connection(h11.SERVER)
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data)
        self._process()

    def _process(self) -> None:
        while not self._busy:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError:
                self._transport.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request, self._body = event, bytearray()
            elif isinstance(event, h11.Data):
                self._body.extend(event.data)
            elif isinstance(event, h11.EndOfMessage) and self._request is not None:
                self._busy = True
                request = self._request
                headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers}
                reply = self._peer.handle(
                    request.method.decode(), request.target.decode("latin-1"), headers, bytes(self._body)
                )
                if reply.delay:
                    self._timer = asyncio.get_running_loop().call_later(reply.delay, self._respond, reply)
                else:
                    self._respond(reply)
            elif isinstance(event, h11.ConnectionClosed):
                self._transport.close()
                return

    def _respond(self, reply: Reply) -> None:
        self._timer = None
        if self._transport.is_closing():
            return
        headers = [
            ("content-type", "application/json; charset=UTF-8"),
            ("content-length", str(len(reply.body))),
            *reply.headers,
        ]
        out = self._conn.send(h11.Response(status_code=reply.status, headers=headers))
        out = (out or b"") + (self._conn.send(h11.Data(data=reply.body)) or b"")
        out += self._conn.send(h11.EndOfMessage()) or b""
        self._transport.write(out)
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is not h11.DONE:
            self._transport.close()
            return
        self._conn.start_next_cycle()
        self._busy = False
        self._process()

    def connection_lost(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
