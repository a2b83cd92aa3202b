"""sync.sources.sftp against the local peer: host key pinning, one-line errors, atomic uploads; and
the peer itself (its root cannot be left, its command line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import paramiko
import pytest
from flask import Flask

from core.config import Settings
from sync.peers.sftp import SftpPeer
from sync.runs import SyncError
from sync.sources.sftp import connect, upload_file
from tests.sync.profiles.conftest import USER, Keys, run_profiles


def _settings(settings_overrides: dict[str, Any], **changes: Any) -> Settings:
    return Settings(**{**settings_overrides, **changes})


def test_an_unknown_host_key_is_refused_with_the_line_to_pin_it(
    settings_overrides: dict[str, Any], peer: SftpPeer, tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(SyncError) as caught:
        connect(_settings(settings_overrides, sftp_known_hosts=empty))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"sFTP host key of [127.0.0.1]:{peer.port} (ecdsa-sha2-nistp256 SHA256:")
    assert f"is not in {empty}: refused" in message
    assert message.endswith(f"add this line to {empty}: {peer.known_hosts_line}")
    assert empty.read_text() == ""  # never added


def test_a_changed_host_key_is_refused(settings_overrides: dict[str, Any], peer: SftpPeer, tmp_path: Path) -> None:
    other = paramiko.ECDSAKey.generate()
    pinned = tmp_path / "stale_known_hosts"
    pinned.write_text(f"[127.0.0.1]:{peer.port} {other.get_name()} {other.get_base64()}\n")
    with pytest.raises(SyncError, match=r"differs from the one pinned in .*: refused"):
        connect(_settings(settings_overrides, sftp_known_hosts=pinned))


def test_a_key_the_server_does_not_accept(settings_overrides: dict[str, Any], peer: SftpPeer, ssh_keys: Keys) -> None:
    with pytest.raises(SyncError, match=rf"sFTP authentication failed for user '{USER}' at 127.0.0.1:{peer.port}"):
        connect(_settings(settings_overrides, sftp_key_file=ssh_keys.other_file))
    with pytest.raises(SyncError, match="authentication failed for user 'someone'"):
        connect(_settings(settings_overrides, sftp_user="someone"))


def test_an_rsa_key_works_too(
    settings_overrides: dict[str, Any], sftp_root: Path, ssh_keys: Keys, tmp_path: Path
) -> None:
    rsa = paramiko.RSAKey.generate(2048)
    rsa.write_private_key_file(str(tmp_path / "id_rsa"))
    with SftpPeer(sftp_root, ssh_keys.host, [rsa], user=USER) as rsa_peer:
        known = tmp_path / "rsa_known_hosts"
        known.write_text(rsa_peer.known_hosts_line + "\n")
        settings = _settings(
            settings_overrides, sftp_port=rsa_peer.port, sftp_key_file=tmp_path / "id_rsa", sftp_known_hosts=known
        )
        with connect(settings) as source:
            assert source.files("inbox", "*") == []


def test_unreachable_unconfigured_and_missing_folders(
    app: Flask, settings_overrides: dict[str, Any], peer: SftpPeer, tmp_path: Path
) -> None:
    with pytest.raises(SyncError, match=r"^sFTP server 127\.0\.0\.1:1 unreachable: "):
        connect(_settings(settings_overrides, sftp_port=1))
    with pytest.raises(SyncError, match=r"^sFTP is not configured: set PUSHGATE_SFTP_HOST, PUSHGATE_SFTP_KNOWN_HOSTS$"):
        connect(_settings(settings_overrides, sftp_host="", sftp_known_hosts=None))
    not_a_key = tmp_path / "not_a_key"
    not_a_key.write_text("hello")
    with pytest.raises(SyncError, match="is not an RSA, Ed25519 or ECDSA private key"):
        connect(_settings(settings_overrides, sftp_key_file=not_a_key))
    run = run_profiles(app, settings={"sftp_inbox": "nowhere"})
    assert (run.status, run.error) == ("failed", f"sFTP folder 'nowhere' does not exist on 127.0.0.1:{peer.port}")


def test_upload_is_atomic(settings_overrides: dict[str, Any], peer: SftpPeer, sftp_root: Path, tmp_path: Path) -> None:
    local = tmp_path / "broadlog_0412.csv"
    local.write_bytes(b"id,status\n" + b"1,sent\n" * 50_000)
    (sftp_root / "upload" / "broadlog_0412.csv").write_text("yesterday's version")
    remote = upload_file(_settings(settings_overrides), local)
    assert remote == "upload/broadlog_0412.csv"
    assert (sftp_root / "upload" / "broadlog_0412.csv").read_bytes() == local.read_bytes()
    assert sorted(os.listdir(sftp_root / "upload")) == ["broadlog_0412.csv"]
    written = [op for op in peer.operations if op[0] != "open" or op[2] == "w"]
    assert written == [
        ("open", "/upload/.broadlog_0412.csv.part", "w"),
        ("posix_rename", "/upload/.broadlog_0412.csv.part", "/upload/broadlog_0412.csv"),
    ]


def test_a_failed_upload_leaves_nothing_under_the_final_name(
    settings_overrides: dict[str, Any], sftp_root: Path, ssh_keys: Keys, tmp_path: Path
) -> None:
    local = tmp_path / "export.csv"
    local.write_bytes(b"x" * 300_000)
    with SftpPeer(sftp_root, ssh_keys.host, [ssh_keys.client_public], max_file_bytes=100_000) as full_disk:
        known = tmp_path / "full_known_hosts"
        known.write_text(full_disk.known_hosts_line + "\n")
        settings = _settings(settings_overrides, sftp_port=full_disk.port, sftp_known_hosts=known)
        with pytest.raises(SyncError, match=r"^sFTP uploading upload/export.csv: refused by 127.0.0.1:\d+"):
            upload_file(settings, local)
        assert os.listdir(sftp_root / "upload") == []  # neither export.csv nor its part file
        with pytest.raises(SyncError, match="sFTP folder 'elsewhere' does not exist"):
            upload_file(
                _settings(
                    settings_overrides, sftp_port=full_disk.port, sftp_known_hosts=known, sftp_upload_dir="elsewhere"
                ),
                local,
            )


def test_the_cli_uploads(runner: Any, peer: SftpPeer, sftp_root: Path, tmp_path: Path) -> None:
    local = tmp_path / "tracking.csv"
    local.write_text("a,b\n1,2\n")
    result = runner.invoke(args=["sync", "upload", str(local)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"uploaded {local} to upload/tracking.csv"
    assert (sftp_root / "upload" / "tracking.csv").read_text() == "a,b\n1,2\n"


def _client(peer: SftpPeer, keys: Keys) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{peer.port}", peer.host_key.get_name(), peer.host_key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=peer.port,
        username=USER,
        key_filename=str(keys.client_file),
        allow_agent=False,
        look_for_keys=False,
    )
    return client, client.open_sftp()


def test_the_peer_keeps_clients_inside_its_root(peer: SftpPeer, sftp_root: Path, ssh_keys: Keys) -> None:
    secret = sftp_root.parent / "secret.txt"
    secret.write_text("outside the root")
    (sftp_root / "inbox" / "escape").symlink_to(secret)
    (sftp_root / "inbox" / "up").symlink_to(sftp_root.parent, target_is_directory=True)
    client, sftp = _client(peer, ssh_keys)
    try:
        for path in (
            "../secret.txt",
            "/../secret.txt",
            "inbox/../../secret.txt",
            "inbox/escape",
            "inbox/up/secret.txt",
        ):
            with pytest.raises(PermissionError):
                sftp.open(path, "rb")
        with pytest.raises(PermissionError):
            sftp.listdir("..")
        with pytest.raises(PermissionError):
            sftp.listdir("inbox/up")
        with pytest.raises(PermissionError):
            sftp.open("../planted.txt", "wb")
        with pytest.raises(PermissionError):
            sftp.rename("/inbox/escape", "../moved")
        with pytest.raises(PermissionError):
            sftp.symlink("/etc/passwd", "inbox/link")
        assert sftp.normalize("..") == "/"
        assert sorted(sftp.listdir("/")) == ["inbox", "upload"]
        with sftp.open("inbox/../inbox/./inside.txt", "wb") as file:  # ".." inside the root is fine
            file.write(b"ok")
        assert (sftp_root / "inbox" / "inside.txt").read_bytes() == b"ok"
    finally:
        sftp.close()
        client.close()
    assert secret.read_text() == "outside the root"
    assert not (sftp_root.parent / "planted.txt").exists() and not (sftp_root.parent / "moved").exists()


@pytest.mark.slow
def test_the_peer_runs_from_the_command_line(tmp_path: Path, ssh_keys: Keys) -> None:
    public = tmp_path / "id.pub"
    public.write_text(f"{ssh_keys.client_public.get_name()} {ssh_keys.client_public.get_base64()} test\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync.peers.sftp",
            "--root",
            str(tmp_path / "root"),
            "--port",
            "0",
            "--host-key",
            str(tmp_path / "host_key"),
            "--authorized-key",
            str(public),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("sFTP peer listening on 127.0.0.1:")
        port = int(first.rsplit(":", 1)[1])
        pin = process.stdout.readline().split("known_hosts line: ", 1)[1].strip()
        known = tmp_path / "known_hosts"
        known.write_text(pin + "\n")
        settings = Settings(
            sftp_host="127.0.0.1",
            sftp_port=port,
            sftp_user="anyone",
            sftp_key_file=ssh_keys.client_file,
            sftp_known_hosts=known,
        )
        (tmp_path / "root" / "inbox").mkdir()
        with connect(settings) as source:
            assert source.files("inbox", "*") == []
        assert (tmp_path / "host_key").exists()  # generated on first start
    finally:
        process.terminate()
        assert process.wait(10) == 0
        if process.stdout is not None:
            process.stdout.close()
