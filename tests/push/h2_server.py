"""A small scriptable HTTP/2 server for the tests of push/providers/h2_client.py, over real TLS.

:class:`Server` runs inside the test's event loop on 127.0.0.1 (h2 server-side, the local CA's
certificate): it announces the SETTINGS a test gives (MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE),
acknowledges the DATA it reads, sends answers within the client's windows, and hands every complete
request to the test's handler. A handler answers ``(status, headers, body)``, or returns None after
acting itself through the request's :class:`Peer` (GOAWAY, RST_STREAM, dropping the connection) or
never answers at all. The server records what the client did: its connections, requests, resets,
DATA frame sizes and the most streams one connection had open at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset, WindowUpdated
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from push.peers.tls import LocalTLS

Answer = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class Request:
    peer: Peer
    stream_id: int
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.headers[":path"]


Handler = Callable[[Request], Awaitable[Answer | None]]


async def echo(request: Request) -> Answer:
    """Status from x-status (200), the path in x-path, the body (else the path) back."""
    status = int(request.headers.get("x-status", "200"))
    return status, [("x-path", request.path)], request.body or request.path.encode()


class Peer(asyncio.Protocol):
    """One server-side connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.index = len(server.peers)
        server.peers.append(self)
        settings = {SettingCodes.MAX_CONCURRENT_STREAMS: server.max_streams or 100}
        if server.window is not None:
            settings[SettingCodes.INITIAL_WINDOW_SIZE] = server.window
        self.conn = H2Connection(H2Configuration(client_side=False))
        self.conn.local_settings = Settings(client=False, initial_values=settings)  # in force at once
        self.transport: asyncio.Transport | None = None
        self.open: set[int] = set()
        self.pending: dict[int, tuple[dict[str, str], bytearray]] = {}  # requests still arriving
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.window = asyncio.Event()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open.clear()
        for task in self.tasks.values():
            task.cancel()
        self.window.set()
        self.lost.set_result(None)

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.server.errors.append(repr(exc))
            self.drop()
            return
        for event in events:
            if isinstance(event, RequestReceived) and event.stream_id is not None:
                self.open.add(event.stream_id)
                self.server.max_open = max(self.server.max_open, len(self.open))
                headers = {bytes(k).decode(): bytes(v).decode() for k, v in event.headers or ()}
                self.pending[event.stream_id] = (headers, bytearray())
            elif isinstance(event, DataReceived) and event.stream_id is not None:
                self.server.data_frames.append(len(event.data or b""))
                self.pending[event.stream_id][1].extend(event.data or b"")
                self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
            elif isinstance(event, StreamEnded) and event.stream_id is not None:
                headers, body = self.pending.pop(event.stream_id)
                request = Request(self, event.stream_id, headers, bytes(body))
                self.server.requests.append(request)
                self.tasks[event.stream_id] = asyncio.ensure_future(self._answer(request))
            elif isinstance(event, StreamReset) and event.stream_id is not None:
                self.server.resets.append((event.stream_id, event.error_code))
                self.open.discard(event.stream_id)
                self.pending.pop(event.stream_id, None)
                task = self.tasks.pop(event.stream_id, None)
                if task is not None:
                    task.cancel()
            elif isinstance(event, WindowUpdated):
                self.window.set()
            elif isinstance(event, ConnectionTerminated):
                self.drop()
        self.flush()

    async def _answer(self, request: Request) -> None:
        stream_id = request.stream_id
        answer = await self.server.handler(request)
        if answer is not None:
            status, extra, body = answer
            self.conn.send_headers(stream_id, [(":status", str(status)), *extra])
            while body:
                size = min(len(body), self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                if size == 0:
                    self.flush()
                    self.window.clear()
                    await self.window.wait()
                    continue
                self.conn.send_data(stream_id, body[:size])
                body = body[size:]
            self.conn.end_stream(stream_id)
            self.open.discard(stream_id)
            self.flush()
        self.tasks.pop(stream_id, None)

    # what a handler may do instead of answering

    def goaway(self, last_stream_id: int) -> None:
        self.conn.close_connection(last_stream_id=last_stream_id)
        self.flush()

    def reset(self, stream_id: int, code: ErrorCodes) -> None:
        self.conn.reset_stream(stream_id, code)
        self.open.discard(stream_id)
        self.flush()

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Server:
    def __init__(
        self, tls: LocalTLS, handler: Handler, *, max_streams: int | None, window: int | None, alpn: str
    ) -> None:
        self.tls, self.handler, self.max_streams, self.window, self.alpn = tls, handler, max_streams, window, alpn
        self.peers: list[Peer] = []
        self.requests: list[Request] = []
        self.resets: list[tuple[int, int]] = []
        self.data_frames: list[int] = []
        self.errors: list[str] = []
        self.max_open = 0  # the most streams one connection had open at once
        self.port = 0

    async def __aenter__(self) -> Server:
        context = self.tls.server_context(alpn=(self.alpn,))
        self.listener = await asyncio.get_running_loop().create_server(lambda: Peer(self), "127.0.0.1", 0, ssl=context)
        self.port = self.listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.listener.close()
        for peer in self.peers:
            peer.drop()
        await self.settle()
        await self.listener.wait_closed()

    async def settle(self) -> None:
        """Wait until every connection is gone and every handler has finished."""
        await asyncio.gather(*(peer.lost for peer in self.peers))
        await asyncio.gather(*(t for peer in self.peers for t in peer.tasks.values()), return_exceptions=True)
