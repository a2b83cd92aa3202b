"""H2Pool (push/providers/h2_client.py) against a small scriptable HTTP/2 server over real TLS sockets.

:class:`Server` runs inside each test's event loop on 127.0.0.1 (h2 server-side, the local CA's
certificate): it announces the SETTINGS a test gives (MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE),
acknowledges the DATA it reads, sends answers within the client's windows, and hands every complete
request to the test's handler. A handler answers ``(status, headers, body)``, or returns None after
acting itself through the request's :class:`Peer` (GOAWAY, RST_STREAM, dropping the connection) or
never answers at all. The server records what the client did: its connections, requests, resets,
DATA frame sizes and the most streams one connection had open at once.

Covered: many concurrent requests each matched to its answer; the server's stream limit and
``max_connections`` respected, a second connection opened only when the first is full; GOAWAY
(retried above last_stream_id, InFlightLost at or below); RST_STREAM (REFUSED_STREAM retried,
others InFlightLost); a dropped connection; cancellation resetting the stream; flow control both
ways; ConnectFailed (refused, no h2 by ALPN); close() leaving no connection and no task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset, WindowUpdated
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from core.tls import client_context
from push.peers.tls import LocalTLS, local_tls
from push.providers.h2_client import ConnectFailed, H2Pool, H2Response, InFlightLost

Answer = tuple[int, list[tuple[str, str]], bytes]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    return local_tls(tmp_path_factory.mktemp("h2-tls"))


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a test on a new loop; a test that hangs fails after 5 s instead."""

    async def bounded() -> None:
        async with asyncio.timeout(5):
            await coroutine

    asyncio.run(bounded())


def head(path: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "https"), (":authority", "localhost"), (":path", path), *extra]


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


@contextlib.asynccontextmanager
async def serving(
    tls: LocalTLS,
    handler: Handler = echo,
    *,
    max_streams: int | None = None,
    window: int | None = None,
    alpn: str = "h2",
    **pool_options: Any,
) -> AsyncIterator[tuple[Server, H2Pool]]:
    """A server and a pool pointed at it (closed afterwards)."""
    async with Server(tls, handler, max_streams=max_streams, window=window, alpn=alpn) as server:
        pool = H2Pool("127.0.0.1", server.port, client_context(tls.ca_path), **pool_options)
        try:
            yield server, pool
        finally:
            await pool.close()


def stream_ids(server: Server, connection: int) -> dict[str, int]:
    """The stream id of each path the server received on its connection number ``connection``."""
    return {r.path: r.stream_id for r in server.requests if r.peer.index == connection}


# tests ------------------------------------------------------------------------------------------


def test_many_concurrent_requests_each_get_their_own_answer(tls: LocalTLS) -> None:
    async def main() -> None:
        async with serving(tls) as (server, pool):
            answers = await asyncio.gather(
                *(
                    pool.request(head(f"/r/{i}", ("x-status", str(200 + i % 3))), f"body {i}".encode())
                    for i in range(500)
                )
            )
            for i, answer in enumerate(answers):
                assert answer == H2Response(200 + i % 3, {"x-path": f"/r/{i}"}, f"body {i}".encode())
            assert 2 <= len(server.peers) <= 4  # 100 streams each; a third or fourth if answers are slow
            assert server.errors == []

    run(main())


@pytest.mark.parametrize(("requests", "connections"), [(3, 1), (8, 2)])
def test_stream_limit_and_max_connections(tls: LocalTLS, requests: int, connections: int) -> None:
    async def main() -> None:
        full = asyncio.Event()  # answers wait until every connection the pool may open is full

        async def slow(request: Request) -> Answer:
            if sum(len(peer.open) for peer in server.peers) >= min(requests, 6):
                full.set()
            await full.wait()
            return await echo(request)

        async with serving(tls, slow, max_streams=3, max_connections=2) as (server, pool):
            answers = await asyncio.gather(*(pool.request(head(f"/{i}"), b"") for i in range(requests)))
            assert [a.body for a in answers] == [f"/{i}".encode() for i in range(requests)]
            assert server.max_open == 3
            assert len(server.peers) == connections
            assert server.errors == []

    run(main())


def test_goaway_retries_above_last_stream_id_and_loses_the_rest(tls: LocalTLS) -> None:
    async def main() -> None:
        async def handler(request: Request) -> Answer | None:
            if request.peer.index > 0:
                return await echo(request)
            if len(server.requests) == 4:
                request.peer.goaway(last_stream_id=3)
            return None  # never answered on the first connection

        async with serving(tls, handler) as (server, pool):
            outcomes = await asyncio.gather(
                *(pool.request(head(f"/{i}"), b"") for i in range(4)), return_exceptions=True
            )
            first = stream_ids(server, 0)
            assert sorted(first.values()) == [1, 3, 5, 7]
            for i, outcome in enumerate(outcomes):
                if first[f"/{i}"] <= 3:
                    assert isinstance(outcome, InFlightLost)
                else:
                    assert isinstance(outcome, H2Response) and outcome.body == f"/{i}".encode()
            assert sorted(stream_ids(server, 1)) == sorted(p for p, s in first.items() if s > 3)

    run(main())


def test_refused_stream_is_sent_again_other_resets_are_lost(tls: LocalTLS) -> None:
    async def main() -> None:
        async def handler(request: Request) -> Answer | None:
            if sum(r.path == request.path for r in server.requests) > 1:
                return await echo(request)
            code = ErrorCodes.REFUSED_STREAM if request.path == "/refused" else ErrorCodes.INTERNAL_ERROR
            request.peer.reset(request.stream_id, code)
            return None

        async with serving(tls, handler) as (server, pool):
            assert (await pool.request(head("/refused"), b"")).body == b"/refused"
            with pytest.raises(InFlightLost):
                await pool.request(head("/failed"), b"")
            assert [r.path for r in server.requests] == ["/refused", "/refused", "/failed"]
            assert len(server.peers) == 1

    run(main())


def test_connection_dropped_mid_flight(tls: LocalTLS) -> None:
    async def main() -> None:
        async def handler(request: Request) -> Answer | None:
            if request.path == "/drop":
                request.peer.drop()
                return None
            return await echo(request)

        async with serving(tls, handler) as (server, pool):
            with pytest.raises(InFlightLost):
                await pool.request(head("/drop"), b"")
            assert (await pool.request(head("/after"), b"x")).body == b"x"
            assert len(server.peers) == 2

    run(main())


def test_cancelled_request_resets_its_stream(tls: LocalTLS) -> None:
    async def main() -> None:
        async def handler(request: Request) -> Answer | None:
            if request.path == "/never":
                await asyncio.Future()
            return await echo(request)

        async with serving(tls, handler, max_streams=1, max_connections=1) as (server, pool):
            await pool.request(head("/warm"), b"")  # the connection is open: /never goes out at once
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await pool.request(head("/never"), b"")
            assert (await pool.request(head("/next"), b"")).body == b"/next"
            assert server.resets == [(3, ErrorCodes.CANCEL)]
            assert len(server.peers) == 1

    run(main())


def test_flow_control_both_ways(tls: LocalTLS) -> None:
    async def main() -> None:
        async def kilobyte(request: Request) -> Answer:
            return 200, [], request.path.encode().ljust(1024, b".")

        async with serving(tls, kilobyte, max_connections=1) as (server, pool):
            answers = await asyncio.gather(*(pool.request(head(f"/{i}"), b"") for i in range(300)))
            assert [a.body for a in answers] == [f"/{i}".encode().ljust(1024, b".") for i in range(300)]
            assert len(server.peers) == 1

        async with serving(tls, window=1000) as (server, pool):
            body = bytes(range(256)) * 40  # 10,240 bytes against a 1,000-byte stream window
            assert (await pool.request(head("/big"), body)).body == body
            assert max(server.data_frames) <= 1000
            assert server.errors == []

    run(main())


def test_connect_failed_when_nothing_listens(tls: LocalTLS) -> None:
    async def main() -> None:
        with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        pool = H2Pool("127.0.0.1", port, client_context(tls.ca_path), attempts=1)
        with pytest.raises(ConnectFailed):
            await pool.request(head("/"), b"")
        await pool.close()

    run(main())


def test_connect_failed_without_h2_by_alpn(tls: LocalTLS) -> None:
    async def main() -> None:
        async with serving(tls, alpn="http/1.1") as (server, pool):
            with pytest.raises(ConnectFailed, match="did not agree to HTTP/2"):
                await pool.request(head("/"), b"")
            assert server.requests == []

    run(main())


def test_close_ends_every_connection_and_leaves_no_task(tls: LocalTLS) -> None:
    async def main() -> None:
        both_hang = asyncio.Event()

        async def handler(request: Request) -> Answer | None:
            if request.path == "/hang":
                if sum(r.path == "/hang" for r in server.requests) == 2:
                    both_hang.set()
                await asyncio.Future()
            return await echo(request)

        async with serving(tls, handler, max_streams=1, max_connections=2) as (server, pool):
            await asyncio.gather(pool.request(head("/a"), b""), pool.request(head("/b"), b""))
            hanging = [asyncio.ensure_future(pool.request(head("/hang"), b"")) for _ in range(3)]
            await both_hang.wait()  # two in flight, one waiting for a stream
            await pool.close()
            outcomes = await asyncio.gather(*hanging, return_exceptions=True)
            assert sorted(type(o).__name__ for o in outcomes) == ["ConnectFailed", "InFlightLost", "InFlightLost"]
            await server.settle()  # every server-side connection saw its end
            assert len(server.peers) == 2
            assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main())
