"""Batch ingestion: JSON-lines files into a batch, completed, then followed to its end.

Adobe's contract (experienceleague.adobe.com/docs/experience-platform/ingestion/batch-ingestion/
api-overview.html, .../catalog/api/look-up-object.html):

1. ``POST /data/foundation/import/batches`` ``{"datasetId", "inputFormat": {"format": "json"}}``
   -> 201 ``{"id", "status": "loading", ...}``;
2. ``PUT /data/foundation/import/batches/{id}/datasets/{datasetId}/files/{name}``, body the file
   (``application/octet-stream``, one JSON record per line, at most 256 MB a file; larger files
   need the chunked upload, which pushgate avoids by writing several files);
3. ``POST /data/foundation/import/batches/{id}?action=COMPLETE``;
4. ``GET /data/foundation/catalog/batches/{id}`` -> ``{"{id}": {"status", "errors"?, ...}}`` until
   the status is final. ``?action=ABORT`` drops a batch that was never completed.

:class:`JsonLinesFiles` writes records into temporary files of at most ``file_bytes`` each;
:class:`BatchIngestion` makes the calls (each retried on 429/5xx by :meth:`Platform.retrying`)
and :meth:`BatchIngestion.wait` polls with a growing interval until the batch succeeds or fails,
or ``timeout`` passes (:class:`BatchStillRunning`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from core.errors import PermanentError, RetryableError
from sync.platform import errors
from sync.platform.client import Platform

#: Largest file uploaded in one PUT (Adobe: small-file upload up to 256 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Catalog batch statuses after which nothing changes.
SUCCESS = "success"
FAILED_STATES = frozenset({"failed", "failure", "aborted", "abandoned", "inactive", "deleted", "failed_final"})


class BatchStillRunning(RetryableError):
    """The batch was completed but had not reached a final status when the wait ended."""


class JsonLinesFiles:
    """Serialised records written to temporary JSON-lines files, a new file before one would
    exceed ``file_bytes``. Use as a context manager: the files are deleted on exit."""

    def __init__(self, file_bytes: int = MAX_FILE_BYTES, directory: Path | None = None) -> None:
        self.file_bytes = file_bytes
        self._dir = tempfile.TemporaryDirectory(prefix="pushgate-batch-", dir=directory)
        self.paths: list[Path] = []
        self.records = 0
        self._file: IO[bytes] | None = None
        self._size = 0

    def __enter__(self) -> JsonLinesFiles:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
        self._dir.cleanup()

    def write(self, record: bytes) -> None:
        line = len(record) + 1
        if self._file is None or (self._size and self._size + line > self.file_bytes):
            self._rotate()
        assert self._file is not None
        self._file.write(record)
        self._file.write(b"\n")
        self._size += line
        self.records += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        self.close()
        path = Path(self._dir.name) / f"part-{len(self.paths) + 1:05d}.json"
        self.paths.append(path)
        self._file = path.open("wb")
        self._size = 0


class BatchIngestion:
    """The batch ingestion and Catalog calls of one export."""

    def __init__(
        self,
        platform: Platform,
        *,
        poll_first: float = 2.0,
        poll_max: float = 60.0,
        timeout: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.platform = platform
        self.poll_first = poll_first
        self.poll_max = poll_max
        self.timeout = timeout
        self.clock = clock

    def create(self, dataset_id: str) -> str:
        """A new batch of ``dataset_id``; PermanentError saying what to fix when the Platform refuses
        it (an unknown dataset: ``sync provision``)."""
        body = {"datasetId": dataset_id, "inputFormat": {"format": "json"}}
        url = self.platform.api("/data/foundation/import/batches")
        call = "POST /data/foundation/import/batches"
        response = self.platform.retrying(
            lambda: self.platform.request("POST", url, json=body, ok=(200, 201, 400, 404), call=call)
        )
        if response.status_code in (400, 404):
            raise errors.refused(response, call)
        batch_id = response.json().get("id")
        if not isinstance(batch_id, str) or not batch_id:
            raise PermanentError("POST /data/foundation/import/batches: the answer has no batch id")
        return batch_id

    def upload(self, batch_id: str, dataset_id: str, path: Path) -> None:
        url = self.platform.api(f"/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{path.name}")
        call = f"PUT /data/foundation/import/batches/{batch_id}/datasets/{{dataset}}/files/{path.name}"

        def put() -> None:
            with path.open("rb") as body:
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(os.fstat(body.fileno()).st_size),
                }
                self.platform.request("PUT", url, content=body, headers=headers, call=call)

        self.platform.retrying(put)

    def complete(self, batch_id: str) -> None:
        self._action(batch_id, "COMPLETE")

    def abort(self, batch_id: str) -> None:
        self._action(batch_id, "ABORT")

    def _action(self, batch_id: str, action: str) -> None:
        url = self.platform.api(f"/data/foundation/import/batches/{batch_id}")
        self.platform.retrying(
            lambda: self.platform.request(
                "POST", url, params={"action": action}, call=f"POST .../batches/{batch_id}?action={action}"
            )
        )

    def status(self, batch_id: str) -> tuple[str, str]:
        """(lower-case status, one line of its errors) from the Catalog."""
        url = self.platform.api(f"/data/foundation/catalog/batches/{batch_id}")
        response = self.platform.retrying(lambda: self.platform.request("GET", url, ok=(200,)))
        body: Any = response.json()
        batch = body.get(batch_id) if isinstance(body, dict) else None
        if not isinstance(batch, dict) and isinstance(body, dict) and len(body) == 1:
            batch = next(iter(body.values()))
        if not isinstance(batch, dict):
            raise PermanentError(f"GET /data/foundation/catalog/batches/{batch_id}: the answer names no such batch")
        status = str(batch.get("status", "")).lower()
        return status, _errors(batch)

    def wait(self, batch_id: str) -> tuple[str, str]:
        """Poll until the batch's status is final; returns it with its errors. Raises
        BatchStillRunning after ``timeout`` seconds."""
        deadline = self.clock() + self.timeout
        interval = self.poll_first
        while True:
            status, problems = self.status(batch_id)
            if status == SUCCESS or status in FAILED_STATES:
                return status, problems
            if self.clock() + interval > deadline:
                raise BatchStillRunning(f"batch {batch_id} is still {status or 'unknown'} after {self.timeout:.0f} s")
            self.platform.sleep(interval)
            interval = min(interval * 2, self.poll_max)


def _errors(batch: dict[str, Any]) -> str:
    found = batch.get("errors")
    if not isinstance(found, list) or not found:
        return ""
    parts = []
    for error in found[:3]:
        if isinstance(error, dict):
            parts.append(" ".join(str(error.get("description") or error.get("code") or error).split()))
    return "; ".join(parts)[:300]
