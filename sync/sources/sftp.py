"""The one module that talks to Campaign's sFTP server, through paramiko.

Connecting uses the settings: ``PUSHGATE_SFTP_HOST``, ``_PORT``, ``_USER`` and ``_KEY_FILE`` (an RSA,
Ed25519 or ECDSA private key, OpenSSH or PEM form, without passphrase). The server's host key must
be pinned in ``PUSHGATE_SFTP_KNOWN_HOSTS``: a key that file does not list is refused, never added.
For a port other than 22 the entry is named ``[host]:port``, as ``ssh-keyscan -p PORT HOST``
writes it. Every failure (unreachable server, refused key, unknown host key, missing folder, lost
connection) is a one-line :class:`sync.runs.SyncError`.

What the sync jobs do with an open :class:`SftpSource`:

- :meth:`~SftpSource.files`: the regular files of a folder whose names match a glob, oldest first
  (:class:`RemoteFile`; its ``etag``, ``size-mtime``, keys the ledger);
- :meth:`~SftpSource.open` one as a binary stream. Reads are pipelined a region of
  :data:`READ_AHEAD` bytes at a time, so a large file streams quickly without ever being held in
  memory, and a reader that stops early leaves at most one region in flight;
- :meth:`~SftpSource.archive` it: a POSIX rename into the archive folder (created when missing),
  replacing an archived file of the same name;
- :meth:`~SftpSource.put` a local file under a remote name atomically: it is uploaded as
  ``.NAME.part`` in the same folder, then renamed over ``NAME``. A failed upload removes the part
  file, so nothing incomplete ever appears under the final name. Rejects files and
  ``flask --app wsgi sync upload FILE`` (:func:`upload_file`) go through it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import paramiko

from core.config import Settings
from sync.runs import SyncError

#: Seconds to connect, exchange banners and authenticate.
CONNECT_TIMEOUT = 30.0
#: Seconds one sFTP request may wait for its answer once connected.
IO_TIMEOUT = 60.0
#: Bytes requested ahead of the reader (in 32 KiB requests sent together).
READ_AHEAD = 2 * 1024 * 1024
_BUFFER = 256 * 1024
_TRANSPORT_ERRORS = (OSError, EOFError, paramiko.SSHException)


@dataclass(frozen=True)
class RemoteFile:
    """A file found in a remote folder."""

    name: str
    size: int
    mtime: int

    @property
    def etag(self) -> str:
        """What the ledger keys a file by, with its name: a file rewritten in place is a new file."""
        return f"{self.size}-{self.mtime}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "no detail"


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"host key of {hostname} is not pinned")
        self.hostname = hostname
        self.key = key


class _PinnedOnly(paramiko.RejectPolicy):
    """Refuse any host key the known_hosts file does not list, keeping the key for the message."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


def _private_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except OSError as exc:
        raise SyncError(f"cannot read PUSHGATE_SFTP_KEY_FILE {path}: {_one_line(exc.strerror or exc)}") from None
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise SyncError(f"PUSHGATE_SFTP_KEY_FILE {path} is protected by a passphrase; use a key without one") from None
    except (ValueError, paramiko.SSHException) as exc:
        raise SyncError(
            f"PUSHGATE_SFTP_KEY_FILE {path} is not an RSA, Ed25519 or ECDSA private key paramiko can read "
            f"({_one_line(exc)})"
        ) from None


def connect(settings: Settings, *, timeout: float = CONNECT_TIMEOUT) -> SftpSource:
    """Open an sFTP session with the settings' server, user, key and pinned host key."""
    required = {
        "PUSHGATE_SFTP_HOST": settings.sftp_host,
        "PUSHGATE_SFTP_USER": settings.sftp_user,
        "PUSHGATE_SFTP_KEY_FILE": settings.sftp_key_file,
        "PUSHGATE_SFTP_KNOWN_HOSTS": settings.sftp_known_hosts,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise SyncError(f"sFTP is not configured: set {', '.join(missing)}")
    host, port, user = settings.sftp_host, settings.sftp_port, settings.sftp_user
    key_file, known_hosts = settings.sftp_key_file, settings.sftp_known_hosts
    assert key_file is not None and known_hosts is not None
    key = _private_key(key_file)
    client = paramiko.SSHClient()
    try:
        client.load_system_host_keys(str(known_hosts))  # read only: nothing is ever written back
    except (OSError, paramiko.SSHException) as exc:
        client.close()
        raise SyncError(f"cannot read PUSHGATE_SFTP_KNOWN_HOSTS {known_hosts}: {_one_line(exc)}") from None
    client.set_missing_host_key_policy(_PinnedOnly())
    where = f"{host}:{port}"
    try:
        client.connect(
            host,
            port=port,
            username=user,
            pkey=key,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
        )
        sftp = client.open_sftp()
    except _UnknownHostKey as exc:
        client.close()
        entry = f"{exc.hostname} {exc.key.get_name()} {exc.key.get_base64()}"
        raise SyncError(
            f"sFTP host key of {exc.hostname} ({exc.key.get_name()} {exc.key.fingerprint}) is not in "
            f"{known_hosts}: refused. Check the fingerprint with the server's administrator, then add this "
            f"line to {known_hosts}: {entry}"
        ) from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise SyncError(
            f"sFTP host key of {where} ({exc.key.get_name()} {exc.key.fingerprint}) differs from the one pinned "
            f"in {known_hosts}: refused (the server's key changed, or something is in the middle)"
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        raise SyncError(
            f"sFTP authentication failed for user {user!r} at {where} with the key in {key_file}: {_one_line(exc)}"
        ) from None
    except TimeoutError:
        client.close()
        raise SyncError(f"sFTP server {where} unreachable: no answer within {timeout:g} s") from None
    except OSError as exc:
        client.close()
        raise SyncError(f"sFTP server {where} unreachable: {_one_line(exc.strerror or exc)}") from None
    except (EOFError, paramiko.SSHException) as exc:
        client.close()
        raise SyncError(f"sFTP connection to {where} failed: {_one_line(exc)}") from None
    channel = sftp.get_channel()
    if channel is not None:
        channel.settimeout(IO_TIMEOUT)
    return SftpSource(client, sftp, where)


def upload_file(settings: Settings, path: Path | str) -> str:
    """Put the local file ``path`` into ``PUSHGATE_SFTP_UPLOAD_DIR`` atomically; returns its remote
    path. The folder must exist (a typo must not create a folder nobody reads)."""
    local = Path(path)
    if not local.is_file():
        raise SyncError(f"{local} is not a readable file")
    with connect(settings) as source:
        return source.put(local, settings.sftp_upload_dir or ".", local.name, create_folder=False)


class SftpSource:
    """An open sFTP session. Use as a context manager, or call :meth:`close`."""

    def __init__(self, client: paramiko.SSHClient, sftp: paramiko.SFTPClient, where: str) -> None:
        self._client = client
        self._sftp = sftp
        self.where = where

    def __enter__(self) -> SftpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sftp.close()
        finally:
            self._client.close()

    # -- errors ----------------------------------------------------------------------------------

    def _error(self, action: str, exc: BaseException) -> SyncError:
        """A one-line SyncError for ``exc`` raised while doing ``action``."""
        if isinstance(exc, FileNotFoundError):
            return SyncError(f"sFTP {action}: no such file or folder on {self.where}")
        if isinstance(exc, PermissionError):
            return SyncError(f"sFTP {action}: permission denied on {self.where}")
        if isinstance(exc, TimeoutError):
            return SyncError(f"sFTP {action}: {self.where} did not answer within {IO_TIMEOUT:g} s")
        channel = self._sftp.get_channel()
        connected = channel is not None and not channel.closed
        if isinstance(exc, OSError) and exc.errno is None and not isinstance(exc, ConnectionError) and connected:
            # paramiko's IOError(text) for any other status the server sent (SSH_FX_FAILURE...)
            return SyncError(f"sFTP {action}: refused by {self.where}: {_one_line(exc)}")
        return SyncError(f"sFTP connection to {self.where} lost while {action}: {_one_line(exc)}")

    # -- reading ---------------------------------------------------------------------------------

    def files(self, folder: str, pattern: str) -> list[RemoteFile]:
        """Regular files of ``folder`` whose names match the glob ``pattern``, oldest first.

        A missing folder is a :class:`SyncError` naming it."""
        try:
            entries = self._sftp.listdir_attr(folder)
        except FileNotFoundError:
            raise SyncError(f"sFTP folder {folder!r} does not exist on {self.where}") from None
        except _TRANSPORT_ERRORS as exc:
            raise self._error(f"listing folder {folder!r}", exc) from None
        files = [
            RemoteFile(entry.filename, int(entry.st_size or 0), int(entry.st_mtime or 0))
            for entry in entries
            if entry.st_mode is not None
            and stat.S_ISREG(entry.st_mode)
            and fnmatch.fnmatchcase(entry.filename, pattern)
        ]
        return sorted(files, key=lambda f: (f.mtime, f.name))

    @contextmanager
    def open(self, folder: str, file: RemoteFile) -> Iterator[IO[bytes]]:
        """``folder/file`` as a buffered binary stream. Connection problems while reading raise
        :class:`SyncError`."""
        path = posixpath.join(folder, file.name)
        try:
            remote = self._sftp.open(path, "rb")
        except _TRANSPORT_ERRORS as exc:
            raise self._error(f"opening {path}", exc) from None
        stream = io.BufferedReader(_RemoteStream(remote, file.size, path, self), _BUFFER)
        try:
            yield stream
        finally:
            # Closing waits for the requests still in flight. If the connection is gone, the
            # next request reports it.
            with contextlib.suppress(*_TRANSPORT_ERRORS, SyncError):
                stream.close()

    # -- writing ---------------------------------------------------------------------------------

    def makedirs(self, folder: str) -> None:
        """Create ``folder`` and its missing parents."""
        path = ""
        for part in folder.split("/"):
            path = f"{path}/{part}" if path or folder.startswith("/") else part
            if part in ("", "."):
                continue
            try:
                if stat.S_ISDIR(self._sftp.stat(path).st_mode or 0):
                    continue
                raise SyncError(f"sFTP path {path!r} on {self.where} is a file, not a folder")
            except FileNotFoundError:
                pass
            except _TRANSPORT_ERRORS as exc:
                raise self._error(f"checking folder {path!r}", exc) from None
            try:
                self._sftp.mkdir(path)
            except _TRANSPORT_ERRORS as exc:
                raise self._error(f"creating folder {path!r}", exc) from None

    def _replace(self, source: str, target: str) -> None:
        """Rename ``source`` over ``target`` (POSIX semantics: an existing target is replaced)."""
        try:
            self._sftp.posix_rename(source, target)
            return
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno is not None:
                raise
            # A server without the posix-rename extension: remove, then plain rename.
        with contextlib.suppress(FileNotFoundError):
            self._sftp.remove(target)
        self._sftp.rename(source, target)

    def archive(self, inbox: str, name: str, archive: str) -> str:
        """Move ``inbox/name`` into ``archive`` (created when missing); returns the new path."""
        self.makedirs(archive)
        source, target = posixpath.join(inbox, name), posixpath.join(archive, name)
        try:
            self._replace(source, target)
        except _TRANSPORT_ERRORS as exc:
            raise self._error(f"moving {source} to {archive}", exc) from None
        return target

    def put(self, local: Path | IO[bytes], folder: str, name: str, *, create_folder: bool = True) -> str:
        """Write ``local`` (a path or an open binary file) to ``folder/name`` atomically; returns
        the remote path. ``folder`` is created when missing if ``create_folder``, else a missing
        folder is a :class:`SyncError`."""
        if create_folder:
            self.makedirs(folder)
        else:
            try:
                if not stat.S_ISDIR(self._sftp.stat(folder).st_mode or 0):
                    raise SyncError(f"sFTP path {folder!r} on {self.where} is not a folder")
            except FileNotFoundError:
                raise SyncError(f"sFTP folder {folder!r} does not exist on {self.where}") from None
            except _TRANSPORT_ERRORS as exc:
                raise self._error(f"checking folder {folder!r}", exc) from None
        target = posixpath.join(folder, name)
        part = posixpath.join(folder, f".{name}.part")
        try:
            if isinstance(local, Path):
                self._sftp.put(str(local), part, confirm=True)
            else:
                self._sftp.putfo(local, part, confirm=True)
            self._replace(part, target)
        except _TRANSPORT_ERRORS as exc:
            error = self._error(f"uploading {target}", exc)
            with contextlib.suppress(*_TRANSPORT_ERRORS):  # best effort: the error above is what matters
                self._sftp.remove(part)
            raise error from None
        return target


class _RemoteStream(io.RawIOBase):
    """A remote file as a raw stream, prefetching :data:`READ_AHEAD` bytes at a time.

    paramiko's prefetch requests everything from the position to the size it is given, and its
    requests must be answered before any other request on the session; asking one region at a
    time keeps both what is buffered and what a reader that stops early leaves in flight bounded.
    """

    def __init__(self, remote: paramiko.SFTPFile, size: int, path: str, source: SftpSource) -> None:
        super().__init__()
        self._remote = remote
        self._size = size
        self._path = path
        self._source = source
        self._position = 0
        self._ahead = 0  # end of the region requested so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = len(view)
        try:
            if self._position >= self._ahead and self._position < self._size:
                self._ahead = min(self._position + READ_AHEAD, self._size)
                self._remote.prefetch(self._ahead)
            if self._position < self._ahead:
                wanted = min(wanted, self._ahead - self._position)
            data = self._remote.read(wanted)
        except _TRANSPORT_ERRORS as exc:
            raise self._source._error(f"reading {self._path}", exc) from None
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._remote.close()
            finally:
                super().close()
