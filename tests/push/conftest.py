"""APNs fixtures: a local CA, a provider signing key, and one APNs emulator per session on its own
thread and event loop (reset before each test that asks for ``apns_peer``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from push.peers.apns import ApnsEmulator, EmulatorThread
from push.peers.tls import LocalTLS, local_tls
from push.providers.apns import ApnsProvider, TokenCredentials

APNS_TOPIC = "com.example.app"
APNS_KEY_ID = "ABC123DEFG"
APNS_TEAM_ID = "TEAM123456"
APNS_SLOW_DELAY = 1.0


@dataclass(frozen=True)
class ApnsKey:
    private_pem: str
    public_key: ec.EllipticCurvePublicKey
    key_id: str = APNS_KEY_ID
    team_id: str = APNS_TEAM_ID

    @property
    def credentials(self) -> TokenCredentials:
        return TokenCredentials(self.private_pem, self.key_id, self.team_id)


def make_apns_key() -> ApnsKey:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ApnsKey(pem, key.public_key())


@pytest.fixture(scope="session")
def apns_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    return local_tls(tmp_path_factory.mktemp("apns-tls"))


@pytest.fixture(scope="session")
def apns_key() -> ApnsKey:
    return make_apns_key()


@pytest.fixture(scope="session")
def apns_emulator_thread(apns_tls: LocalTLS, apns_key: ApnsKey) -> Iterator[EmulatorThread]:
    def lookup(key_id: str, team_id: str) -> ec.EllipticCurvePublicKey | None:
        return apns_key.public_key if (key_id, team_id) == (apns_key.key_id, apns_key.team_id) else None

    emulator = ApnsEmulator(apns_tls, key_lookup=lookup, topics={APNS_TOPIC}, slow_delay=APNS_SLOW_DELAY)
    with EmulatorThread(emulator) as running:
        yield running


@pytest.fixture
def apns_peer(apns_emulator_thread: EmulatorThread) -> ApnsEmulator:
    """The session's emulator with an empty inbox, no fail-once memory and the default slow delay."""
    emulator = apns_emulator_thread.emulator
    emulator.reset()
    emulator.slow_delay = APNS_SLOW_DELAY
    return emulator


@pytest.fixture
def apns_provider_factory(
    apns_peer: ApnsEmulator, apns_tls: LocalTLS, apns_key: ApnsKey
) -> Callable[..., ApnsProvider]:
    """Builds providers pointed at the emulator (token auth with the trusted key unless told otherwise)."""

    def make(**kwargs: Any) -> ApnsProvider:
        if "certificate" not in kwargs:
            kwargs.setdefault("token", apns_key.credentials)
        kwargs.setdefault("topic", APNS_TOPIC)
        kwargs.setdefault("endpoint", apns_peer.url)
        kwargs.setdefault("ca_bundle", apns_tls.ca_path)
        kwargs.setdefault("timeout", 30.0)  # generous: the machine may be busy; timeout tests set theirs
        return ApnsProvider(**kwargs)

    return make
