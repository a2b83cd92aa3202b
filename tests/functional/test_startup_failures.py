"""Start-up failures are one line (issue 16, item 2): an unreachable or unmigrated database, an
emulator port another program holds, and a ``PUSHGATE_*`` variable that is no setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import unknown_variables
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


def flask(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATE_", "FLASK_"))}
    clean.update(PUSHGATE_SECRET_KEY=TEST_SECRET, PUSHGATE_INSTANCE_PATH=str(tmp_path / "instance"), **env)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        check=False,
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_an_unreachable_postgresql_is_one_line_naming_the_setting_without_its_password(
    tmp_path: Path, taken_port: int
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    url = f"postgresql+psycopg://postgres:hunter2secret@127.0.0.1:{port}/pushgate"
    for command in (["keys", "list"], ["db", "upgrade"], ["worker"]):
        result = flask(tmp_path, *command, PUSHGATE_DATABASE_URL=url)
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(
            "pushgate: the database of PUSHGATE_DATABASE_URL (postgresql+psycopg://postgres:***@"
        )
        assert "is unreachable" in lines[0] and "hunter2secret" not in result.stderr + result.stdout


def test_an_unmigrated_database_is_one_line_saying_to_upgrade(tmp_path: Path) -> None:
    for command in (["keys", "list"], ["worker"], ["users", "list"]):
        result = flask(tmp_path, *command)
        assert result.returncode == 1, result
        assert result.stderr.strip().splitlines() == [
            "Error: the database is at migration none, this pushgate needs 0013: run flask --app wsgi db upgrade"
        ]


def test_an_emulator_port_in_use_is_one_line(tmp_path: Path, taken_port: int) -> None:
    assert flask(tmp_path, "db", "upgrade").returncode == 0
    for option in ("--apns-port", "--fcm-port", "--inbox-port", "--platform-port"):
        result = flask(tmp_path, "emulators", option, str(taken_port))
        assert result.returncode == 1, result
        assert result.stderr.strip().splitlines() == [
            f"Error: the emulators cannot start: port {taken_port} on 127.0.0.1 is in use; stop what uses it, "
            "or choose other ports (--apns-port, --fcm-port, --inbox-port, --platform-port)"
        ]
        assert not (tmp_path / "instance" / "emulators.env").exists()


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    environ = {
        "PUSHGATE_PAGESIZE": "10",
        "PUSHGATE_PAGE_SIZE": "10",
        "PUSHGATE_TEST_DATABASE_URL": "sqlite://",
        "PUSHGATE_WHATEVER": "1",
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [
        "unknown setting PUSHGATE_PAGESIZE is ignored; did you mean PUSHGATE_PAGE_SIZE?",
        "unknown setting PUSHGATE_WHATEVER is ignored; see the README's settings table",
    ]


def test_the_gateway_warns_of_an_unknown_variable_at_start(tmp_path: Path) -> None:
    assert flask(tmp_path, "db", "upgrade").returncode == 0
    result = flask(tmp_path, "keys", "list", PUSHGATE_RATE_LIMT_API="10/minute")
    assert result.returncode == 0
    assert "unknown setting PUSHGATE_RATE_LIMT_API is ignored; did you mean PUSHGATE_RATE_LIMIT_API?" in result.stderr
