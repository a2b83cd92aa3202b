"""Issue 14, item 8: the instance folder and the SQLite store are the owner's only.

The store holds push tokens, device data and profiles, the folder the generated secret key: on a
shared host, a umask of 022 made both readable by every local user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.app import create_app
from store import db as store_db


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_instance_folder_and_sqlite_files_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # a common default: files 0644, folders 0755
    try:
        instance = tmp_path / "instance"
        url = f"sqlite:///{instance / 'pushgate.db'}"
        store_db.upgrade(url)
        app = create_app(overrides={"instance_path": instance, "database_url": url})
        with app.test_client() as client:
            assert client.get("/readyz").status_code == 200
    finally:
        os.umask(previous)
    assert _mode(instance) == 0o700
    assert _mode(instance / "secret.key") == 0o600
    written = sorted(p.name for p in instance.iterdir())
    assert "pushgate.db" in written and "pushgate.db-wal" in written, written
    for name in written:
        assert _mode(instance / name) == 0o600, name


@pytest.mark.parametrize("existing", [0o750, 0o755])
def test_a_folder_the_operator_made_is_left_as_it_is(tmp_path: Path, existing: int) -> None:
    instance = tmp_path / "shared"
    instance.mkdir(mode=existing)
    os.chmod(instance, existing)
    store_db.make_engine(f"sqlite:///{instance / 'pushgate.db'}").dispose()
    assert _mode(instance) == existing and _mode(instance / "pushgate.db") == 0o600
