"""Fixtures every sync test package may use: the local Experience Platform peer on loopback, one per
test (``peer_config`` can be overridden for a differently configured peer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.peers.platform import PeerConfig, PlatformPeer


@pytest.fixture
def peer_config() -> PeerConfig:
    return PeerConfig()


@pytest.fixture
def peer(peer_config: PeerConfig) -> Iterator[PlatformPeer]:
    with PlatformPeer(peer_config).start() as running:
        yield running
