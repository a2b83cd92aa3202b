"""A secret key that is not the database's stops every command and the server at start, with one line
naming the setting (issue 16, item 1): before, the server started, /readyz said ok, and deliveries
stalled with a traceback in the log every 30 s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from core.secrets import SecretBox
from store import db as store_db

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-12-08 09:00:00.000000"
WRONG_KEY = (
    "pushgate: PUSHGATE_SECRET_KEY differs from the key this database was written with (its credentials and "
    "tracking signatures cannot be read); set the key it was created with"
)


class Gateway:
    """``flask --app wsgi ...`` on one SQLite database, with the secret key a call gives."""

    def __init__(self, tmp_path: Path) -> None:
        self.instance = tmp_path / "instance"
        self.url = f"sqlite:///{tmp_path / 'pushgate.db'}"

    def __call__(self, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATE_", "FLASK_"))}
        env.update(
            PUSHGATE_SECRET_KEY=key,
            PUSHGATE_INSTANCE_PATH=str(self.instance),
            PUSHGATE_DATABASE_URL=self.url,
            PUSHGATE_WORKER="off",
        )
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args],
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def new_key() -> str:
    return Fernet.generate_key().decode()


def refused_with(result: subprocess.CompletedProcess[str], line: str) -> bool:
    return result.returncode == 1 and result.stderr.strip().splitlines() == [line] and "Traceback" not in result.stdout


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    return Gateway(tmp_path)


@pytest.mark.slow
def test_another_key_stops_every_command_and_the_server_with_one_line(gateway: Gateway, tmp_path: Path) -> None:
    key = new_key()
    assert gateway(key, "db", "upgrade").returncode == 0
    assert gateway(key, "keys", "create", "--role", "admin", "--name", "ops").returncode == 0  # writes the check
    other = new_key()
    for command in (["keys", "list"], ["db", "upgrade"], ["db", "current"], ["worker"], ["run", "--port", "1"]):
        result = gateway(other, *command)
        assert refused_with(result, WRONG_KEY), (command, result)
    # No PUSHGATE_SECRET_KEY: the key pushgate generates into the instance folder is another key too.
    generated = gateway("", "keys", "list")
    assert refused_with(
        generated,
        f"pushgate: the key in {tmp_path / 'instance' / 'secret.key'} (used while PUSHGATE_SECRET_KEY is empty) "
        "differs from the key this database was written with (its credentials and tracking signatures cannot be "
        "read); set PUSHGATE_SECRET_KEY to the key it was created with",
    ), generated
    listed = gateway(key, "keys", "list")
    assert listed.returncode == 0 and "ops" in listed.stdout


@pytest.mark.slow
def test_a_database_from_before_the_check_is_refused_with_another_key_and_not_signed_with_it(
    gateway: Gateway,
) -> None:
    key, other = new_key(), new_key()
    store_db.upgrade(gateway.url, "0012")
    engine = store_db.make_engine(gateway.url)
    sealed = SecretBox(key.encode()).seal({"service_account": "{}"})
    with engine.begin() as conn:  # an app whose FCM credentials were sealed with the original key
        conn.execute(text("INSERT INTO app (id, name, created_at, updated_at) VALUES (1, 'Shop', :t, :t)"), {"t": NOW})
        conn.execute(
            text(
                "INSERT INTO app_platform (app_id, platform, integration_key, app_identifier, credential_kind, "
                "credentials, created_at, updated_at) VALUES (1, 'android', 'k', 'com.example', "
                "'fcm_service_account', :c, :t, :t)"
            ),
            {"c": sealed, "t": NOW},
        )
    upgraded = gateway(other, "db", "upgrade")  # nothing to check against yet: the table comes with it
    assert upgraded.returncode == 0 and "database at 0013" in upgraded.stdout, upgraded
    assert refused_with(gateway(other, "keys", "list"), WRONG_KEY)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM secret_check")).scalar() == 0
    assert gateway(key, "keys", "list").returncode == 0
    with engine.connect() as conn:
        (check,) = conn.execute(text("SELECT sealed FROM secret_check")).scalars()
    engine.dispose()
    assert SecretBox(key.encode()).opens(check)
    assert refused_with(gateway(other, "keys", "list"), WRONG_KEY)
