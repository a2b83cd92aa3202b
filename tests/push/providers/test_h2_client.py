"""H2Pool (push/providers/h2_client.py) against a small scriptable HTTP/2 server over real TLS
sockets (tests/push/h2_server.py), a new one in each test's event loop.

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
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from h2.errors import ErrorCodes

from core.tls import client_context
from push.peers.tls import LocalTLS, local_tls
from push.providers.h2_client import ConnectFailed, H2Pool, H2Response, InFlightLost
from tests.push.h2_server import Answer, Handler, Request, Server, echo


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
