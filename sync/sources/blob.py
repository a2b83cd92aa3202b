"""The one module that talks to Azure Blob Storage, through azure-storage-blob.

The account comes from the settings: ``PUSHGATE_SEGMENTS_CONNECTION_STRING`` (an account key or a
``SharedAccessSignature`` inside), or ``PUSHGATE_SEGMENTS_ACCOUNT_URL`` with
``PUSHGATE_SEGMENTS_CREDENTIAL`` (an account key or a SAS token; a SAS may also sit in the URL).
``PUSHGATE_SEGMENTS_CONTAINER`` and ``PUSHGATE_SEGMENTS_PREFIX`` say where the exports are.

What the segment import does with a :class:`BlobSource`:

- :meth:`~BlobSource.list` the blobs under the prefix (:class:`BlobInfo`: name, ETag, size, last
  modified);
- :meth:`~BlobSource.open` one as a binary stream, pinned to the ETag it was listed with: every
  ranged GET carries ``If-Match``, so a blob replaced while it is read fails with
  :class:`BlobChanged` instead of mixing two versions. The body is fetched
  :data:`CHUNK_BYTES` at a time as the reader consumes it: memory does not grow with the blob.

Every failure is a one-line :class:`sync.runs.SyncError`: authentication refused, container
missing, host unreachable, connection lost mid-blob. Messages name the account host and the
container, never a key or a SAS token, and vendor exceptions are not chained (``from None``):
their text can carry the request URL with its SAS signature. The SDK's per-request log records
(request URL and headers, already redacted by the SDK) go to the DEBUG level of
``pushgate.sync.blob.http`` instead of INFO of ``azure``, and urllib3's DEBUG records, which
print each request line with its query string, get their ``sig=`` values replaced by
``REDACTED`` (:class:`RedactSas`, added to urllib3's loggers when a source is made).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ContainerClient

from core.config import Settings
from sync.runs import SyncError

#: Bytes per ranged GET, the first one included (the SDK's default first GET is 32 MiB).
CHUNK_BYTES = 4 * 1024 * 1024
#: Bytes the stream handed to parsers buffers.
BUFFER_BYTES = 256 * 1024

#: Client options: short retries (a run is retried by its schedule), bounded chunks, quiet logs.
CLIENT_DEFAULTS: dict[str, Any] = {
    "max_single_get_size": CHUNK_BYTES,
    "max_chunk_get_size": CHUNK_BYTES,
    "retry_total": 3,
    "initial_backoff": 1,
    "increment_base": 2,
    "connection_timeout": 20,
    "read_timeout": 60,
    "http_logging_level": logging.DEBUG,
}

HTTP_LOG = logging.getLogger("pushgate.sync.blob.http")

_SETTINGS_HINT = (
    "set PUSHGATE_SEGMENTS_CONNECTION_STRING, or PUSHGATE_SEGMENTS_ACCOUNT_URL with PUSHGATE_SEGMENTS_CREDENTIAL"
)
_REASONS = (
    (re.compile(r"refused", re.I), "connection refused"),
    (re.compile(r"name or service not known|nodename nor servname|getaddrinfo|resolve", re.I), "unknown host"),
    (re.compile(r"timed? ?out", re.I), "timed out"),
    (re.compile(r"reset by peer|aborted|broken pipe|remote end closed|connection.*closed", re.I), "connection lost"),
    (re.compile(r"ssl|certificate", re.I), "TLS failure"),
)


_SIGNATURE = re.compile(r"(sig=)[^&\s\"']+", re.IGNORECASE)
#: urllib3's loggers that print request URLs (query string included) at DEBUG.
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager")


class RedactSas(logging.Filter):
    """Replaces SAS signatures (``sig=...``) in log records with ``REDACTED``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sig=" in message.lower():
            record.msg, record.args = _SIGNATURE.sub(r"\1REDACTED", message), None
        return True


def redact_transport_logs() -> None:
    """Add :class:`RedactSas` to urllib3's loggers (once)."""
    for name in URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSas) for f in logger.filters):
            logger.addFilter(RedactSas())


class BlobChanged(SyncError):
    """The blob was replaced or deleted after it was listed: read it again at the next run."""


@dataclass(frozen=True)
class BlobInfo:
    """A blob under the prefix, as listed."""

    name: str
    etag: str
    size: int
    last_modified: datetime | None


def _reason(exc: BaseException) -> str:
    """A short cause for a transport error, without the vendor text (which can carry the URL)."""
    text = str(exc)
    for pattern, reason in _REASONS:
        if pattern.search(text):
            return reason
    return type(exc).__name__


class BlobSource:
    """One container (and prefix) of one storage account."""

    def __init__(self, container: ContainerClient, prefix: str = "") -> None:
        redact_transport_logs()
        self.container = container
        self.prefix = prefix
        self.location = f"{container.scheme}://{container.primary_hostname}, container {container.container_name!r}"

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> BlobSource:
        """The source the settings describe; ``options`` override :data:`CLIENT_DEFAULTS`
        (``max_chunk_get_size``, ``retry_total``, ...)."""
        if not settings.segments_container:
            raise SyncError("Azure Blob is not configured: set PUSHGATE_SEGMENTS_CONTAINER")
        kwargs = {**CLIENT_DEFAULTS, "logger": HTTP_LOG, **options}
        if settings.segments_connection_string:
            try:
                client = ContainerClient.from_connection_string(
                    settings.segments_connection_string, settings.segments_container, **kwargs
                )
            except (ValueError, AzureError):
                raise SyncError(
                    "PUSHGATE_SEGMENTS_CONNECTION_STRING is not an Azure Storage connection string "
                    "(expected e.g. DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;"
                    "EndpointSuffix=core.windows.net)"
                ) from None
        elif settings.segments_account_url:
            credential = settings.segments_credential or None
            if credential is None and "sig=" not in settings.segments_account_url:
                raise SyncError(
                    "Azure Blob credentials missing: set PUSHGATE_SEGMENTS_CREDENTIAL (account key or SAS token)"
                )
            try:
                client = ContainerClient(
                    settings.segments_account_url, settings.segments_container, credential=credential, **kwargs
                )
            except (ValueError, AzureError):
                raise SyncError(
                    "PUSHGATE_SEGMENTS_ACCOUNT_URL and PUSHGATE_SEGMENTS_CREDENTIAL do not make an Azure Blob "
                    "client (expected https://ACCOUNT.blob.core.windows.net and an account key or SAS token)"
                ) from None
        else:
            raise SyncError(f"Azure Blob is not configured: {_SETTINGS_HINT}")
        return cls(client, settings.segments_prefix)

    # -- errors ------------------------------------------------------------------------------------

    def translate(self, exc: BaseException, doing: str) -> SyncError:  # noqa: PLR0911 -- one return per kind
        """Translate a vendor exception raised while ``doing`` into a one-line :class:`SyncError`."""
        where = self.location
        if isinstance(exc, ResourceModifiedError) or (isinstance(exc, HttpResponseError) and exc.status_code == 412):
            return BlobChanged(f"Azure Blob: {doing}: the blob changed while being read")
        if isinstance(exc, ResourceNotFoundError):
            code = str(getattr(exc, "error_code", "") or "")
            if code == "ContainerNotFound":
                return SyncError(f"Azure Blob: container not found ({where})")
            if code == "BlobNotFound":
                return BlobChanged(f"Azure Blob: {doing}: the blob was deleted after it was listed")
            return SyncError(f"Azure Blob: {doing}: not found ({where})")
        if isinstance(exc, ClientAuthenticationError) or (
            isinstance(exc, HttpResponseError) and exc.status_code in (401, 403)
        ):
            return SyncError(
                f"Azure Blob: authentication failed at {where}: check the account key or SAS token "
                "(and that a SAS allows list and read and has not expired)"
            )
        if isinstance(exc, ServiceRequestError):
            return SyncError(f"Azure Blob: cannot reach {where}: {_reason(exc)}")
        if isinstance(exc, (ServiceResponseError, IncompleteReadError, OSError)):
            return SyncError(f"Azure Blob: {doing}: {_reason(exc)} ({where})")
        if isinstance(exc, HttpResponseError):
            # A failed chunk download wraps the transport error it retried on.
            inner = getattr(exc, "error", None)
            if isinstance(inner, (ServiceResponseError, IncompleteReadError, ServiceRequestError, OSError)):
                return SyncError(f"Azure Blob: {doing}: {_reason(inner)} ({where})")
            code = getattr(exc, "error_code", None) or exc.reason or "error"
            status = exc.status_code if exc.status_code is not None else "no status"
            return SyncError(f"Azure Blob: {doing}: the service answered {status} {code} ({where})")
        return SyncError(f"Azure Blob: {doing}: {type(exc).__name__} ({where})")

    # -- operations --------------------------------------------------------------------------------

    def list(self) -> list[BlobInfo]:
        """The blobs whose names start with the prefix, by name."""
        try:
            found = [
                BlobInfo(blob.name, str(blob.etag), int(blob.size or 0), blob.last_modified)
                for blob in self.container.list_blobs(name_starts_with=self.prefix or None)
            ]
        except (AzureError, OSError) as exc:
            raise self.translate(exc, "listing blobs") from None
        return sorted(found, key=lambda info: info.name)

    @contextmanager
    def open(self, name: str, etag: str) -> Iterator[IO[bytes]]:
        """The blob ``name`` as a binary stream, failing with :class:`BlobChanged` if its ETag is no
        longer ``etag`` (before or during the read) and with :class:`SyncError` on a lost connection."""
        doing = f"reading {name}"
        try:
            downloader = self.container.get_blob_client(name).download_blob(
                etag=etag, match_condition=MatchConditions.IfNotModified, max_concurrency=1
            )
            chunks = downloader.chunks()
        except (AzureError, OSError) as exc:
            raise self.translate(exc, doing) from None
        stream = io.BufferedReader(_ChunkStream(chunks, self, doing), BUFFER_BYTES)
        try:
            yield stream
        finally:
            stream.close()


class _ChunkStream(io.RawIOBase):
    """A raw stream over the downloader's chunk iterator (one ranged GET per chunk, on demand)."""

    def __init__(self, chunks: Iterator[bytes], source: BlobSource, doing: str) -> None:
        super().__init__()
        self._chunks = chunks
        self._source = source
        self._doing = doing
        self._chunk = memoryview(b"")
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._offset >= len(self._chunk):
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            except (AzureError, OSError) as exc:
                raise self._source.translate(exc, self._doing) from None
            self._chunk, self._offset = memoryview(chunk), 0
        size = min(len(buffer), len(self._chunk) - self._offset)
        buffer[:size] = self._chunk[self._offset : self._offset + size]
        self._offset += size
        return size
