"""Credential encryption and API key hashing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from core.errors import ConfigError
from core.secrets import (
    SecretBox,
    api_key_matches,
    new_api_key,
    resolve_secret_key,
    split_api_key,
    wrong_key,
)


def test_key_is_generated_once_with_private_mode(tmp_path: Path) -> None:
    first = resolve_secret_key("", tmp_path)
    assert resolve_secret_key("", tmp_path) == first
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_seal_and_open_round_trip_and_wrong_key() -> None:
    box = SecretBox(Fernet.generate_key())
    sealed = box.seal({"key_p8": "-----BEGIN PRIVATE KEY-----"})
    assert b"BEGIN" not in sealed
    assert box.open(sealed) == {"key_p8": "-----BEGIN PRIVATE KEY-----"}
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        SecretBox(Fernet.generate_key()).open(sealed)
    assert "hidden" in repr(box)


def test_a_check_value_opens_with_its_own_key_only() -> None:
    box = SecretBox(Fernet.generate_key())
    check = box.check_value()
    assert box.opens(check) and box.opens(box.check_value())
    assert not SecretBox(Fernet.generate_key()).opens(check)
    assert not box.opens(b"not a fernet token")


def test_the_wrong_key_line_names_the_setting_or_the_generated_key_file(tmp_path: Path) -> None:
    assert wrong_key("x", tmp_path) == (
        "PUSHGATE_SECRET_KEY differs from the key this database was written with (its credentials and tracking "
        "signatures cannot be read); set the key it was created with"
    )
    line = wrong_key("", tmp_path)
    assert line.startswith(f"the key in {tmp_path / 'secret.key'} (used while PUSHGATE_SECRET_KEY is empty) differs")
    assert line.endswith("set PUSHGATE_SECRET_KEY to the key it was created with") and "\n" not in line


def test_api_keys_are_checked_by_hash() -> None:
    full, lookup, digest = new_api_key()
    assert split_api_key(full) == lookup
    assert api_key_matches(full, digest)
    assert not api_key_matches(full + "x", digest)
    assert split_api_key("Bearer nonsense") is None
