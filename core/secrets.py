"""Encryption of provider credentials at rest, and hashing of API keys.

Credentials (APNs .p8 keys and certificates, FCM service accounts) are stored encrypted with
Fernet (AES-128-CBC + HMAC-SHA256) under ``PUSHGATE_SECRET_KEY``. When that setting is empty a key
is generated once into ``<instance>/secret.key`` (mode 0600) and reused on every start. Folders and
files pushgate creates to hold secrets or data (the instance folder, the SQLite database) are the
owner's only (0700, 0600): :func:`private_folder`, :func:`private_file`.

The database keeps a small value sealed with the key (:meth:`SecretBox.check_value`), so that a
gateway started with another key is stopped at once (``store.secret_check``) instead of failing
on every credential it opens; :func:`wrong_key` is the line it stops with.

API keys are 256-bit random strings, so a single SHA-256 is the right hash: a slow password hash
would only make every request slower without adding safety against guessing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from core.errors import ConfigError

KEY_FILE = "secret.key"


def resolve_secret_key(configured: str, instance_path: Path) -> bytes:
    """Return the Fernet key: the configured one, else the instance file's, generated if absent."""
    if configured:
        key = configured.encode()
    else:
        path = instance_path / KEY_FILE
        if not path.exists():
            private_folder(instance_path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(
            "invalid setting PUSHGATE_SECRET_KEY: must be 32 url-safe base64-encoded bytes "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from None
    return key


def private_folder(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by the owner only; a folder that exists is
    left as its owner made it."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def private_file(path: Path) -> None:
    """Create ``path`` empty and readable by the owner only, in a private folder, unless it exists
    (SQLite then opens it, and gives its WAL and shared-memory files the same mode)."""
    private_folder(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def wrong_key(configured: str, instance_path: Path) -> str:
    """The one line a start with a key that cannot open the database's sealed values stops with:
    it names the setting, or the generated key file used while the setting is empty."""
    cannot = (
        "differs from the key this database was written with (its credentials and tracking signatures cannot be read)"
    )
    if configured:
        return f"PUSHGATE_SECRET_KEY {cannot}; set the key it was created with"
    return (
        f"the key in {instance_path / KEY_FILE} (used while PUSHGATE_SECRET_KEY is empty) {cannot}; "
        "set PUSHGATE_SECRET_KEY to the key it was created with"
    )


#: What :meth:`SecretBox.check_value` seals: any key opens its own check value, no other key does.
CHECK_PLAINTEXT = {"pushgate": "secret key check"}


class SecretBox:
    """Encrypts and decrypts JSON-serialisable credential objects."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for ``purpose`` (such as signing tracking ids), derived from the secret
        key: one secret to keep, and no purpose's key reveals another's or the secret itself."""
        return hmac.new(self._key, b"pushgate/" + purpose.encode(), hashlib.sha256).digest()

    def seal(self, value: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise ConfigError(
                "stored credentials cannot be decrypted: PUSHGATE_SECRET_KEY differs from the key "
                "they were written with"
            ) from None
        return data

    def opens(self, token: bytes) -> bool:
        """Whether ``token`` was sealed with this key."""
        try:
            self._fernet.decrypt(token)
        except InvalidToken:
            return False
        return True

    def check_value(self) -> bytes:
        """A value sealed with this key, kept in the database to tell at start whether the
        configured key is the one the database was written with."""
        return self.seal(CHECK_PLAINTEXT)

    def __repr__(self) -> str:  # never show key material
        return "SecretBox(<hidden>)"


API_KEY_PREFIX = "pgk"


def new_api_key() -> tuple[str, str, str]:
    """Return (full key, lookup prefix, hash). Only the prefix and hash are stored."""
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    full = f"{API_KEY_PREFIX}_{lookup}_{secret}"
    return full, lookup, hash_api_key(full)


def split_api_key(full: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like one of ours."""
    parts = full.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def hash_api_key(full: str) -> str:
    return hashlib.sha256(full.encode()).hexdigest()


def api_key_matches(full: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(full), stored_hash)


def new_integration_key() -> str:
    """A Campaign-style integration key: a random UUID-shaped string."""
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
