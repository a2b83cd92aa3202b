"""A local sFTP server (paramiko's own server side), rooted at a folder, for development and tests.

It speaks the real SSH and sFTP protocols, so the gateway's paramiko client is exercised exactly
as against Campaign's server:

- the host key comes from a file (generated there, ECDSA, when the file does not exist yet);
- clients authenticate with a public key listed in an authorized keys file (``ssh-ed25519 AAAA...``
  lines, as ``~/.ssh/authorized_keys``); passwords are refused;
- every path is resolved inside the root: ``..`` above the root and symbolic links leading out of
  it are refused with "permission denied", and clients cannot create links;
- ``rename`` refuses to replace an existing file (sFTP version 3) while ``posix-rename@openssh.com``
  replaces it, as OpenSSH does;
- ``max_file_bytes`` makes writes past that size fail, as a full disk would;
- :attr:`SftpPeer.operations` records what clients did (``("open", "/inbox/x.csv", "w")``,
  ``("posix_rename", old, new)``, ...), so tests can check how a file was written.

This module is the SSH side (keys, public-key authentication, one transport per client); the sFTP
operations on the root are :mod:`sync.peers.sftp_files`.

From a shell::

    python -m sync.peers.sftp --root /tmp/campaign --host-key instance/sftp_host_key \\
        --authorized-key ~/.ssh/id_ed25519.pub --port 2222

prints ``sFTP peer listening on 127.0.0.1:2222`` first, then the line to add to the known_hosts
file of ``PUSHGATE_SFTP_KNOWN_HOSTS``. In a test, ``SftpPeer(...).start()`` and ``.port``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import signal
import socket
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from sync.peers.sftp_files import RootedSFTP

log = logging.getLogger("pushgate.peers.sftp")


def load_authorized_keys(path: Path) -> list[paramiko.PKey]:
    """The public keys of an authorized keys file (one ``TYPE BASE64 [comment]`` per line)."""
    keys = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            keys.append(paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1], validate=True)))
        except (IndexError, ValueError, binascii.Error, paramiko.SSHException) as exc:
            raise ValueError(f"{path}:{number}: not a public key line ({exc})") from None
    if not keys:
        raise ValueError(f"{path} holds no public key")
    return keys


def load_host_key(path: Path) -> paramiko.PKey:
    """The private host key in ``path``; a new ECDSA key is written there when it does not exist."""
    if not path.exists():
        key = paramiko.ECDSAKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        key.write_private_key_file(str(path))
        return key
    return paramiko.PKey.from_path(path)


def known_hosts_line(host: str, port: int, key: paramiko.PKey) -> str:
    """The known_hosts line that pins ``key`` for ``host:port``."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key.get_name()} {key.get_base64()}"


class SftpPeer:
    """The server: a listening socket on its own thread, one paramiko transport per client."""

    def __init__(
        self,
        root: Path,
        host_key: paramiko.PKey,
        authorized_keys: Iterable[paramiko.PKey],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str | None = None,
        max_file_bytes: int | None = None,
    ) -> None:
        self.root = root.resolve()
        self.host_key = host_key
        self.authorized = {key.asbytes() for key in authorized_keys}
        self.host = host
        self.port = port
        self.user = user
        self.max_file_bytes = max_file_bytes
        self.operations: list[tuple[str, ...]] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._transports: list[paramiko.Transport] = []
        self._stopping = threading.Event()

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> SftpPeer:
        self._listener = socket.create_server((self.host, self.port))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name=f"sftp-peer-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()

    def __enter__(self) -> SftpPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def known_hosts_line(self) -> str:
        return known_hosts_line(self.host, self.port, self.host_key)

    def record(self, *operation: str) -> None:
        with self._lock:
            self.operations.append(operation)

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._handle(connection)
            except Exception:  # one client's failed handshake must not stop the server
                log.exception("sFTP peer: could not serve a connection")
                connection.close()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(None)
        transport = paramiko.Transport(connection)
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, RootedSFTP, self)
        with self._lock:
            self._transports = [t for t in self._transports if t.is_active()]
            self._transports.append(transport)
        # With an event, start_server returns at once; the transport's own thread does the rest.
        transport.start_server(event=threading.Event(), server=_Authenticator(self))


class _Authenticator(paramiko.ServerInterface):
    def __init__(self, peer: SftpPeer) -> None:
        self.peer = peer

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if self.peer.user is not None and username != self.peer.user:
            return AUTH_FAILED
        return AUTH_SUCCESSFUL if key.asbytes() in self.peer.authorized else AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.peers.sftp", description="Local sFTP server (paramiko).")
    parser.add_argument("--root", type=Path, required=True, help="folder served as / (created when missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2222, help="0 picks a free port (printed on start)")
    parser.add_argument("--host-key", type=Path, required=True, help="private host key (ECDSA key created if missing)")
    parser.add_argument(
        "--authorized-key", type=Path, required=True, action="append", help="public key file of a client (repeatable)"
    )
    parser.add_argument("--user", default=None, help="only this user name may log in (default any)")
    parser.add_argument("--max-file-bytes", type=int, default=None, help="writes past this size fail (a full disk)")
    args = parser.parse_args(argv)

    try:
        host_key = load_host_key(args.host_key)
        keys = [key for path in args.authorized_key for key in load_authorized_keys(path)]
    except (OSError, ValueError, paramiko.SSHException) as exc:
        parser.error(str(exc))
    args.root.mkdir(parents=True, exist_ok=True)
    peer = SftpPeer(
        args.root, host_key, keys, host=args.host, port=args.port, user=args.user, max_file_bytes=args.max_file_bytes
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with peer:
        print(f"sFTP peer listening on {peer.host}:{peer.port}", flush=True)
        print(f"root {peer.root}; known_hosts line: {peer.known_hosts_line}", flush=True)
        while not stop.wait(0.5):
            pass
    print("sFTP peer stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
