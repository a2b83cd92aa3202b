"""Settings: read from PUSHGATE_* variables, validated, one clear line on error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_settings, settings_table
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PUSHGATE_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("PUSHGATE_PUBLIC_URL", "https://push.example.com/")
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'pushgate.db').resolve()}"
    assert settings.public_url == "https://push.example.com"
    assert settings.reconciliation_field == "external_id"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PUSHGATE_PAGE_SIZE", "0", "invalid setting PUSHGATE_PAGE_SIZE: Input should be greater than or equal to 1"),
        ("PUSHGATE_DATABASE_URL", "mysql://x", "invalid setting PUSHGATE_DATABASE_URL: must start with sqlite://"),
        ("PUSHGATE_PUBLIC_URL", "push.example.com", "invalid setting PUSHGATE_PUBLIC_URL: must be an absolute"),
        ("PUSHGATE_RECONCILIATION_FIELD", "phone", "invalid setting PUSHGATE_RECONCILIATION_FIELD:"),
    ],
)
def test_wrong_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_entry_point_stops_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PUSHGATE_INSTANCE_PATH": str(tmp_path), "PUSHGATE_PAGE_SIZE": "zero"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "pushgate: invalid setting PUSHGATE_PAGE_SIZE: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_bad_secret_key_is_refused(tmp_path: Path) -> None:
    from gateway.app import create_app

    with pytest.raises(ConfigError, match="PUSHGATE_SECRET_KEY"):
        create_app(overrides={"instance_path": tmp_path, "secret_key": "too-short"})


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for variable, _default, description in settings_table():
        assert description, variable
        assert f"`{variable}`" in readme, f"{variable} is missing from the README's settings table"
