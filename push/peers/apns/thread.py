"""Running the emulator in a thread of its own (tests, the gateway's ``flask emulators``)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from push.peers.apns.common import KeyLookup
from push.peers.apns.emulator import ApnsEmulator


class EmulatorThread:
    """Runs an emulator on its own thread and event loop (for synchronous callers and the CLI app).

    ``with EmulatorThread(emulator) as running: running.url``
    """

    def __init__(self, emulator: ApnsEmulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.emulator.url

    def start(self) -> EmulatorThread:
        started: Future[int] = Future()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                _, port = self._loop.run_until_complete(self.emulator.start(self.host, self.port))
            except BaseException as exc:
                started.set_exception(exc)
                self._loop.close()
                return
            started.set_result(port)
            self._loop.run_forever()
            self._loop.run_until_complete(self.emulator.stop())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="apns-emulator", daemon=True)
        self._thread.start()
        self.port = started.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def key_lookup_from(keys: dict[tuple[str, str], bytes]) -> KeyLookup:
    """A ``key_lookup`` over PEM keys by (key id, team id); a private .p8 key gives its public key."""
    public: dict[tuple[str, str], EllipticCurvePublicKey] = {}
    for ident, pem in keys.items():
        key: Any = load_pem_private_key(pem, None).public_key() if b"PRIVATE KEY" in pem else load_pem_public_key(pem)
        if not isinstance(key, EllipticCurvePublicKey):
            raise ValueError(f"key {ident[0]} is not an EC (ES256) key")
        public[ident] = key
    return lambda key_id, team_id: public.get((key_id, team_id))
