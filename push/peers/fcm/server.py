"""The server (a TLS listener on its own thread and loop, the inbox) and its service accounts."""

from __future__ import annotations

import asyncio
import secrets
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from push.peers.fcm.common import AccountLookup
from push.peers.fcm.peer import FcmPeer
from push.peers.fcm.transport import Connection
from push.peers.inbox import Inbox


class FcmEmulator:
    """The FCM peer on a TCP port, with TLS when ``ssl_context`` is given (what clients need).

    ``port=0`` picks a free port; :attr:`base_url` and :attr:`token_url` tell where it listens
    once open. ``inbox`` defaults to a new one.
    """

    def __init__(
        self,
        accounts: AccountLookup,
        *,
        inbox: Inbox | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        slow_seconds: float = 2.0,
        retry_after: int = 1,
    ) -> None:
        self.inbox = inbox if inbox is not None else Inbox()
        self.peer = FcmPeer(accounts, self.inbox, slow_seconds=slow_seconds, retry_after=retry_after)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.connections: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def retry_after(self) -> int:
        """The Retry-After of the injected quota- and unavailable- answers."""
        return self.peer.retry_after

    def fail_token_endpoint(self, status: int | None) -> None:
        """Make ``/token`` answer ``status`` (None restores normal service)."""
        self._call(setattr, self.peer, "token_failure", status)

    def forget_tokens(self) -> None:
        """Refuse every access token issued so far (as after a restart)."""
        self._call(self.peer.forget_tokens)

    def reset(self) -> None:
        """Empty the inbox, restore the token endpoint and forget which tokens failed once."""
        self._call(self.peer.reset)

    def _call(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function`` on the emulator's loop (the peer is single-threaded)."""
        loop = self._loop
        if loop is None or not loop.is_running() or self._thread is None or threading.current_thread() is self._thread:
            function(*args)
            return
        done = threading.Event()

        def run() -> None:
            try:
                function(*args)
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        done.wait(5)

    # -- on a running loop --------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), self.host, self.port, ssl=self.ssl_context, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = loop

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for transport in list(self.connections):
            transport.close()
        await asyncio.sleep(0.05)  # let TLS close_notify go out
        for transport in list(self.connections):
            transport.abort()
        await self._server.wait_closed()
        self._server = None

    # -- on a thread of its own ---------------------------------------------------------------

    def start(self) -> FcmEmulator:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.open())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.close())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fcm-emulator-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FcmEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Accounts.


def accounts_from(service_accounts: Iterable[Mapping[str, Any]]) -> AccountLookup:
    """An account lookup over service-account JSON objects (their private keys' public halves)."""
    keys: dict[str, rsa.RSAPublicKey] = {}
    for account in service_accounts:
        private_key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{account.get('client_email')}: the private key is not RSA")
        keys[account["client_email"]] = private_key.public_key()
    return keys.get


def new_service_account(project_id: str, token_uri: str) -> dict[str, Any]:
    """A fresh service-account JSON object (2048-bit RSA key) whose token_uri is ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
