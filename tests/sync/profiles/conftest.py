"""sFTP fixtures: keys made here, a local paramiko sFTP server (sync.peers.sftp) on loopback per
test, its host key pinned in a known_hosts file, and the gateway's settings pointing at it."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask

from store.models import SyncRun
from sync import service
from sync.peers.sftp import SftpPeer
from tests.conftest import runtime_of

USER = "campaign"
#: A fixed modification time for files put in the inbox (the ledger keys files by size and mtime).
MTIME = 1_760_000_000


@dataclass(frozen=True)
class Keys:
    host: paramiko.PKey
    client_file: Path
    client_public: paramiko.PKey
    other_file: Path  # a key the server does not know


def _ed25519_file(path: Path) -> paramiko.PKey:
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return paramiko.PKey.from_path(path)


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("ssh-keys")
    host = paramiko.ECDSAKey.generate()
    client = _ed25519_file(folder / "id_ed25519")
    _ed25519_file(folder / "id_other")
    return Keys(host, folder / "id_ed25519", client, folder / "id_other")


@pytest.fixture
def sftp_root(tmp_path: Path) -> Path:
    root = tmp_path / "campaign-sftp"
    (root / "inbox").mkdir(parents=True)
    (root / "upload").mkdir()
    return root


@pytest.fixture
def peer(sftp_root: Path, ssh_keys: Keys) -> Iterator[SftpPeer]:
    with SftpPeer(sftp_root, ssh_keys.host, [ssh_keys.client_public], user=USER) as running:
        yield running


@pytest.fixture
def known_hosts(tmp_path: Path, peer: SftpPeer) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(peer.known_hosts_line + "\n")
    return path


@pytest.fixture
def sftp_settings(peer: SftpPeer, ssh_keys: Keys, known_hosts: Path) -> dict[str, Any]:
    return {
        "sftp_host": "127.0.0.1",
        "sftp_port": peer.port,
        "sftp_user": USER,
        "sftp_key_file": ssh_keys.client_file,
        "sftp_known_hosts": known_hosts,
    }


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any], sftp_settings: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, **sftp_settings}


def put(root: Path, name: str, text: str, *, folder: str = "inbox", mtime: int = MTIME) -> Path:
    """Drop a file as Campaign's workflow would (gzipped when the name ends in .gz)."""
    path = root / folder / name
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    os.utime(path, (mtime, mtime))
    return path


def run_profiles(app: Flask, settings: dict[str, Any] | None = None, **options: Any) -> SyncRun:
    """Run the profiles job as the CLI does; ``settings`` overrides some settings for this run."""
    rt = runtime_of(app)
    chosen = rt.settings.model_copy(update=settings) if settings else rt.settings
    return service.run_now("profiles", settings=chosen, sessions=rt.sessions, trigger="cli", options=options)
