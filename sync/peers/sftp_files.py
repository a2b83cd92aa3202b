"""The sFTP subsystem of the local sFTP peer: every operation confined to the peer's root folder.

Paths are resolved inside the root (sessions start at ``/``): ``..`` above the root and symbolic
links leading out of it are refused with "permission denied" (:class:`Outside`), and clients
cannot create links. ``rename`` refuses to replace an existing file (sFTP version 3) while
``posix-rename@openssh.com`` replaces it, as OpenSSH does; writes past ``max_file_bytes`` fail as
a full disk would; every open and change is recorded on the peer (:meth:`Served.record`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import paramiko
from paramiko.sftp import (
    SFTP_FAILURE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)


class Outside(Exception):
    """A path that would leave the root."""


class Served(Protocol):
    """What the sFTP operations need of the server that runs them."""

    root: Path
    max_file_bytes: int | None

    def record(self, *operation: str) -> None:
        """Note what a client did: ``("open", "/inbox/x.csv", "w")``, ``("posix_rename", old, new)``."""
        ...


def virtual_path(path: str) -> str:
    """The absolute path inside the root that ``path`` names (sessions start at ``/``)."""
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise Outside(path)
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def local_path(root: Path, path: str, *, follow: bool = True) -> Path:
    """The file system path of ``path`` under ``root``; :class:`Outside` when it, or a link on the
    way, leaves the root. With ``follow=False`` the last component itself may be a link (lstat,
    remove)."""
    candidate = root / virtual_path(path).lstrip("/")
    resolved = candidate.resolve() if follow else candidate.parent.resolve() / candidate.name
    if resolved != root and root not in resolved.parents:
        raise Outside(path)
    return resolved


class _Handle(paramiko.SFTPHandle):
    def __init__(self, flags: int, file: Any, limit: int | None) -> None:
        super().__init__(flags)
        self.file = file
        self.limit = limit
        if flags & (os.O_WRONLY | os.O_RDWR):
            self.writefile = file
        if not flags & os.O_WRONLY:
            self.readfile = file

    def write(self, offset: int, data: Any) -> int:
        if self.limit is not None and offset + len(data) > self.limit:
            return SFTP_FAILURE  # what a full disk answers
        return super().write(offset, data)

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.file.fileno()))
        except OSError as exc:
            return _errno(exc)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_OK  # accepted and ignored: the peer keeps its own modes and times


def _errno(exc: OSError) -> int:
    return paramiko.SFTPServer.convert_errno(exc.errno or 0)


class RootedSFTP(paramiko.SFTPServerInterface):
    """The sFTP operations, on the peer's root folder."""

    def __init__(self, server: paramiko.ServerInterface, peer: Served, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.peer = peer

    def canonicalize(self, path: str) -> str:
        try:
            return virtual_path(path)
        except Outside:
            return "/"  # as a chrooted OpenSSH answers; using the path is what gets refused

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        try:
            local = local_path(self.peer.root, path)
            descriptor = os.open(local, flags | getattr(os, "O_BINARY", 0), 0o644)
        except Outside:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno(exc)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        try:
            file = os.fdopen(descriptor, mode)
        except OSError as exc:  # a folder, for instance
            os.close(descriptor)
            return _errno(exc)
        self.peer.record("open", virtual_path(path), "r" if mode == "rb" else "w")
        return _Handle(flags, file, self.peer.max_file_bytes)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        try:
            local = local_path(self.peer.root, path)
            return [
                paramiko.SFTPAttributes.from_stat(os.lstat(local / name), filename=name)
                for name in sorted(os.listdir(local))
            ]
        except Outside:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno(exc)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(local_path(self.peer.root, path)))
        except Outside:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno(exc)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.lstat(local_path(self.peer.root, path, follow=False)))
        except Outside:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno(exc)

    def _change(self, name: str, action: Any, *paths: str) -> int:
        try:
            local = [local_path(self.peer.root, path, follow=False) for path in paths]
            action(*local)
        except Outside:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno(exc)
        self.peer.record(name, *(virtual_path(path) for path in paths))
        return SFTP_OK

    def remove(self, path: str) -> int:
        return self._change("remove", os.remove, path)

    def rename(self, oldpath: str, newpath: str) -> int:
        def rename(old: Path, new: Path) -> None:
            if os.path.lexists(new):
                raise FileExistsError(new)  # sFTP v3: a plain rename never replaces
            os.rename(old, new)

        return self._change("rename", rename, oldpath, newpath)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._change("posix_rename", os.replace, oldpath, newpath)

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return self._change("mkdir", lambda local: os.mkdir(local, 0o755), path)

    def rmdir(self, path: str) -> int:
        return self._change("rmdir", os.rmdir, path)

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        try:
            local_path(self.peer.root, path)
        except Outside:
            return SFTP_PERMISSION_DENIED
        return SFTP_OK  # accepted and ignored, as by the handle

    def readlink(self, path: str) -> str | int:
        return SFTP_OP_UNSUPPORTED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED  # a link is a way out of the root
