"""Azurite, Microsoft's Azure Storage emulator, as the local Azure Blob peer of tests and benchmarks.

Azurite comes from npm (``package.json`` at the project root; ``make setup`` runs ``npm ci``) and
speaks the real Blob REST API, so the gateway's azure-storage-blob client is exercised as against
Azure. :meth:`Azurite.start` runs ``node_modules/.bin/azurite-blob`` on 127.0.0.1 with a port the
system picks, in memory (nothing on disk), without telemetry, and with ``--skipApiVersionCheck``
(azure-storage-blob 12.31 sends an API version newer than Azurite 3.37 knows), then reads the port
from its "successfully listens on" line. The account is Azurite's well-known development account.

From a shell (Ctrl-C stops it)::

    python -m sync.peers.azurite

prints the connection string to put in ``PUSHGATE_SEGMENTS_CONNECTION_STRING``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
#: Azurite's fixed development account and its published key (not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(r"Blob service (?:is )?successfully listens on (http://\S+)")


class AzuriteMissing(RuntimeError):
    """Azurite is not installed (``make setup`` installs it)."""


class Azurite:
    """A running ``azurite-blob`` process."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_file: IO[bytes], log_path: Path) -> None:
        self.process = process
        self.url = url  # http://127.0.0.1:PORT
        self.port = int(url.rsplit(":", 1)[1])
        self._log_file = log_file
        self._log_path = log_path

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    @classmethod
    def start(cls, *, root: Path = ROOT, timeout: float = 60.0) -> Azurite:
        """Start Azurite from ``root``/node_modules; raises :class:`AzuriteMissing` when it is not there."""
        program = root / "node_modules" / ".bin" / "azurite-blob"
        if not program.exists():
            raise AzuriteMissing(f"Azurite is not installed ({program} is missing): run `make setup` (npm ci)")
        if shutil.which("node") is None:
            raise AzuriteMissing("Azurite needs Node.js: install node and npm, then run `make setup`")
        log_path = Path(tempfile.mkstemp(prefix="azurite-", suffix=".log")[1])
        log_file = log_path.open("wb")
        process = subprocess.Popen(  # noqa: S603 -- a fixed argv, no shell
            [
                str(program),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
            ],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for the caller does not reach it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = log_path.read_text(errors="replace")
            match = _LISTENING.search(output)
            if match:
                return cls(process, match.group(1), log_file, log_path)
            if process.poll() is not None:
                break
            time.sleep(0.05)
        process.kill()
        process.wait()
        log_file.close()
        output = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
        raise RuntimeError(f"Azurite did not start within {timeout:.0f}s:\n{output[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    """The development account's connection string for an Azurite blob endpoint on ``host:port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{ACCOUNT};"
    )


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m sync.peers.azurite", description="Run Azurite's Blob service on a free loopback port."
    ).parse_args(argv)
    # SIGTERM (a service manager, kill) ends the wait as Ctrl-C does, so that leaving the block
    # stops node: otherwise the interpreter dies at once and the Azurite child lives on. SIGINT is
    # set too: a process started in the background inherits it ignored, or with no handler.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _interrupt)
    with contextlib.suppress(KeyboardInterrupt), Azurite.start() as peer:  # stopped whenever it comes
        print(f"Azurite Blob listening on {peer.url}", flush=True)
        print(f"PUSHGATE_SEGMENTS_CONNECTION_STRING='{peer.connection_string}'", flush=True)
        peer.process.wait()
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
