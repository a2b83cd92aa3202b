"""FCM fixtures: a local CA, service accounts with real RSA keys, one FCM emulator per session on its
own thread and event loop (reset before each test that asks for ``fcm_emulator``), an event loop
per test module, and providers pointed at it.

A module can run its tests against both FCM peers, the bundled emulator and the independent
hypercorn one (tests/push/fcm_hypercorn.py), by overriding ``fcm_emulator_session`` with a
module-scoped fixture that returns ``each_fcm_peer``.

Test modules load this file with ``pytest_plugins = ["tests.push.fcm_fixtures"]`` and import its
types only under ``TYPE_CHECKING``: imported earlier, pytest could not rewrite it and would warn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from push.peers.fcm import FcmEmulator, accounts_from
from push.peers.tls import LocalTLS, local_tls
from push.providers.fcm import FcmProvider
from tests.factories import service_account
from tests.push.fcm_hypercorn import FcmHypercorn

FCM_PROJECT = "demo-project"
FCM_SLOW_SECONDS = 0.8  # how long slow- tokens wait
FCM_TIMEOUT = 0.4  # the providers' request timeout in these tests: below FCM_SLOW_SECONDS
FCM_RETRY_AFTER = 7  # Retry-After of quota- and unavailable- tokens

T = TypeVar("T")


@dataclass(frozen=True)
class FcmAccounts:
    """The account the emulator knows, and one with the same email but another key."""

    good: dict[str, Any]
    wrong_key: dict[str, Any]


@pytest.fixture(scope="session")
def fcm_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    return local_tls(tmp_path_factory.mktemp("fcm-tls"))


@pytest.fixture(scope="session")
def fcm_accounts() -> FcmAccounts:
    return FcmAccounts(good=service_account(FCM_PROJECT), wrong_key=service_account(FCM_PROJECT))


FCM_PEERS = {"emulator": FcmEmulator, "hypercorn": FcmHypercorn}


def _peer(kind: str, tls: LocalTLS, accounts: FcmAccounts) -> FcmEmulator:
    peer = FCM_PEERS[kind](
        accounts_from([accounts.good]),
        ssl_context=tls.server_context(),
        slow_seconds=FCM_SLOW_SECONDS,
        retry_after=FCM_RETRY_AFTER,
    )
    return peer  # type: ignore[return-value]  # the hypercorn peer has the emulator's public interface


@pytest.fixture(scope="session")
def fcm_emulator_session(fcm_tls: LocalTLS, fcm_accounts: FcmAccounts) -> Iterator[FcmEmulator]:
    with _peer("emulator", fcm_tls, fcm_accounts) as emulator:
        yield emulator


@pytest.fixture(scope="module", params=sorted(FCM_PEERS))
def each_fcm_peer(
    request: pytest.FixtureRequest, fcm_tls: LocalTLS, fcm_accounts: FcmAccounts
) -> Iterator[FcmEmulator]:
    """Each FCM peer in turn, for a module's ``fcm_emulator_session`` override."""
    with _peer(request.param, fcm_tls, fcm_accounts) as peer:
        yield peer


@pytest.fixture
def fcm_emulator(fcm_emulator_session: FcmEmulator) -> FcmEmulator:
    fcm_emulator_session.reset()
    return fcm_emulator_session


@pytest.fixture
def fcm_account(fcm_accounts: FcmAccounts, fcm_emulator: FcmEmulator) -> dict[str, Any]:
    """The known service account, its token_uri on the emulator."""
    return {**fcm_accounts.good, "token_uri": fcm_emulator.token_url}


class Loop:
    """An event loop kept for a module: providers are created and used on it, as the worker does."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


@pytest.fixture(scope="module")
def fcm_loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


def _provider(loop: Loop, account: dict[str, Any], **settings: Any) -> FcmProvider:
    async def create() -> FcmProvider:  # on the loop, as the worker does
        return FcmProvider(account, **settings)

    return loop.run(create())


@pytest.fixture(scope="module")
def fcm_provider_shared(
    fcm_loop: Loop, fcm_emulator_session: FcmEmulator, fcm_accounts: FcmAccounts, fcm_tls: LocalTLS
) -> Iterator[FcmProvider]:
    account = {**fcm_accounts.good, "token_uri": fcm_emulator_session.token_url}
    provider = _provider(
        fcm_loop, account, endpoint=fcm_emulator_session.base_url, ca_bundle=fcm_tls.ca_path, timeout=5.0
    )
    yield provider
    fcm_loop.run(provider.close())


@pytest.fixture
def fcm_provider(fcm_provider_shared: FcmProvider, fcm_emulator: FcmEmulator) -> FcmProvider:
    """The module's provider on the current send path (made once per path: building one costs about
    0.2 s of CPU), with the emulator reset. 5 s request timeout."""
    return fcm_provider_shared


MakeProvider = Callable[..., FcmProvider]


@pytest.fixture
def make_fcm_provider(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_account: dict[str, Any], fcm_tls: LocalTLS
) -> Iterator[MakeProvider]:
    """``make_fcm_provider(account=None, **options)``: a provider of its own on the current send path,
    pointed at the emulator and trusting its CA (request timeout FCM_TIMEOUT); closed after the test."""
    made: list[FcmProvider] = []

    def make(account: dict[str, Any] | None = None, **options: Any) -> FcmProvider:
        settings: dict[str, Any] = {
            "endpoint": fcm_emulator.base_url,
            "ca_bundle": fcm_tls.ca_path,
            "timeout": FCM_TIMEOUT,
            **options,
        }
        provider = _provider(fcm_loop, account or fcm_account, **settings)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        fcm_loop.run(provider.close())
