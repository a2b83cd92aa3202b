"""Azure Blob tests run against Azurite from npm (``make setup`` installs it): one process for the
test session, a fresh container per test, and settings pointing the segment import at it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from sync.peers.azurite import Azurite, AzuriteMissing


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    try:
        peer = Azurite.start()
    except AzuriteMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield peer
    peer.stop()


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    client = ContainerClient.from_connection_string(azurite.connection_string, f"exports-{uuid.uuid4().hex[:16]}")
    client.create_container()
    yield client
    client.delete_container()
    client.close()


@pytest.fixture
def settings_overrides(
    settings_overrides: dict[str, Any], azurite: Azurite, container: ContainerClient
) -> dict[str, Any]:
    return {
        **settings_overrides,
        "segments_connection_string": azurite.connection_string,
        "segments_container": container.container_name,
        "segments_identity_column": "crmId",
        "reconciliation_field": "external_id",
    }
