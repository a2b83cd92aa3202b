"""The Azure Blob source against Azurite: listing, streaming pinned to an ETag, and one-line errors
that never carry a key or a SAS token."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from core.config import Settings
from sync.peers.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from sync.runs import SyncError
from sync.sources.blob import BlobChanged, BlobSource
from tests.sync.segments.exports import upload

FAST = {"retry_total": 0}


def settings(**values: Any) -> Settings:
    return Settings.model_construct(**values)


def source(azurite: Azurite, container: ContainerClient, prefix: str = "", **options: Any) -> BlobSource:
    values = {
        "segments_connection_string": azurite.connection_string,
        "segments_container": container.container_name,
        "segments_prefix": prefix,
    }
    return BlobSource.from_settings(settings(**values), **{**FAST, **options})


def test_list_under_the_prefix(azurite: Azurite, container: ContainerClient) -> None:
    etag = upload(container, "exports/b.csv", b"12345")
    upload(container, "exports/a.csv", b"1")
    upload(container, "elsewhere/c.csv", b"1")
    listed = source(azurite, container, prefix="exports/").list()
    assert [b.name for b in listed] == ["exports/a.csv", "exports/b.csv"]
    assert (listed[1].etag, listed[1].size) == (etag, 5)
    assert listed[1].last_modified is not None


def test_open_streams_the_blob_a_chunk_at_a_time(azurite: Azurite, container: ContainerClient) -> None:
    data = bytes(range(256)) * 400  # 100 KiB
    etag = upload(container, "big.bin", data)
    blobs = source(azurite, container, max_single_get_size=4096, max_chunk_get_size=4096)
    with blobs.open("big.bin", etag) as stream:
        assert stream.read(10) == data[:10]
        assert stream.read() == data[10:]


def test_a_blob_replaced_before_or_while_it_is_read(azurite: Azurite, container: ContainerClient) -> None:
    old = upload(container, "x.csv", b"a" * 50_000)
    upload(container, "x.csv", b"b" * 50_000)
    blobs = source(azurite, container, max_single_get_size=4096, max_chunk_get_size=4096)
    with pytest.raises(BlobChanged, match="changed while being read"), blobs.open("x.csv", old):
        pass
    current = blobs.list()[0].etag
    with pytest.raises(BlobChanged, match="changed while being read"), blobs.open("x.csv", current) as stream:
        stream.read(100)
        upload(container, "x.csv", b"c" * 50_000)
        stream.read()
    container.delete_blob("x.csv")
    with (
        pytest.raises(BlobChanged, match=r"(changed while being read|deleted after it was listed)$"),
        blobs.open("x.csv", current),
    ):
        pass


def test_missing_container(azurite: Azurite) -> None:
    values = {"segments_connection_string": azurite.connection_string, "segments_container": "nosuchcontainer"}
    with pytest.raises(
        SyncError,
        match=r"^Azure Blob: container not found \(http://127\.0\.0\.1:\d+/devstoreaccount1, "
        r"container 'nosuchcontainer'\)$",
    ):
        BlobSource.from_settings(settings(**values), **FAST).list()


def test_wrong_account_key(azurite: Azurite, container: ContainerClient) -> None:
    wrong = azurite.connection_string.replace(ACCOUNT_KEY, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=")
    values = {"segments_connection_string": wrong, "segments_container": container.container_name}
    with pytest.raises(SyncError, match="authentication failed") as caught:
        BlobSource.from_settings(settings(**values), **FAST).list()
    assert "d3Jvbmcta2V5" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_host() -> None:
    port = free_port()
    values = {
        "segments_account_url": f"http://127.0.0.1:{port}/{ACCOUNT}",
        "segments_credential": ACCOUNT_KEY,
        "segments_container": "exports",
    }
    with pytest.raises(
        SyncError,
        match=rf"^Azure Blob: cannot reach http://127\.0\.0\.1:{port}/{ACCOUNT}, container 'exports': "
        r"connection refused$",
    ):
        BlobSource.from_settings(settings(**values), **FAST).list()


def sas(container: ContainerClient, expiry: datetime) -> str:
    return generate_container_sas(
        ACCOUNT,
        container.container_name,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=expiry,
    )


def test_sas_token_works_and_never_shows(
    azurite: Azurite, container: ContainerClient, caplog: pytest.LogCaptureFixture
) -> None:
    upload(container, "a.csv", b"1")
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{azurite.port}/{ACCOUNT}"
    good = sas(container, datetime.now(UTC) + timedelta(hours=1))
    values = {"segments_account_url": url, "segments_credential": good, "segments_container": container.container_name}
    listed = BlobSource.from_settings(settings(**values), **FAST).list()
    with BlobSource.from_settings(settings(**values), **FAST).open("a.csv", listed[0].etag) as stream:
        assert stream.read() == b"1"
    expired = sas(container, datetime.now(UTC) - timedelta(hours=1))
    values["segments_credential"] = expired
    with pytest.raises(SyncError, match="authentication failed") as caught:
        BlobSource.from_settings(settings(**values), **FAST).list()
    values["segments_account_url"] = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"
    with pytest.raises(SyncError, match="cannot reach") as unreachable:
        BlobSource.from_settings(settings(**values), **FAST).list()
    for token in (good, expired):
        signature = dict(part.split("=", 1) for part in token.split("&"))["sig"]
        assert signature not in caplog.text
        assert signature not in str(caught.value) + str(unreachable.value)
    assert ACCOUNT_KEY not in caplog.text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "Azure Blob is not configured: set PUSHGATE_SEGMENTS_CONTAINER"),
        ({"segments_container": "c"}, "Azure Blob is not configured: set PUSHGATE_SEGMENTS_CONNECTION_STRING, or"),
        (
            {"segments_container": "c", "segments_account_url": "https://acct.blob.core.windows.net"},
            "Azure Blob credentials missing: set PUSHGATE_SEGMENTS_CREDENTIAL",
        ),
        (
            {"segments_container": "c", "segments_connection_string": "AccountKey=secret-value;nonsense"},
            "PUSHGATE_SEGMENTS_CONNECTION_STRING is not an Azure Storage connection string",
        ),
    ],
)
def test_configuration_errors(values: dict[str, str], message: str) -> None:
    with pytest.raises(SyncError) as caught:
        BlobSource.from_settings(settings(**values))
    assert str(caught.value).startswith(message)
    assert "secret-value" not in str(caught.value)
