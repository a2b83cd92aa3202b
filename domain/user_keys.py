"""Verified user keys: an app may require that a registration's user key be vouched for.

Without verification, anyone holding an app's public integration key links any token to any
profile by sending that profile's user key, and then receives that person's personalised pushes.
With it, the app's backend, which knows who is logged in, gives the app
``HMAC-SHA256(secret, user_key)`` in lower-case hex; the app sends it beside the user key
(``user_key_hash`` on the native API, the additional parameter ``userKeyHash`` on Campaign
Classic). The secret is the app's, made by pushgate and shown once; it never ships in the app.

Per app, ``user_key_verification`` is:

- ``off``: every user key links, as before (a hash sent is ignored);
- ``optional``: a user key with a hash links only when the hash is right; one without links
  (for the time the apps in the field are being updated);
- ``required``: a user key links only with a right hash.

A user key that may not link is stored as no user key: the subscription is kept, unlinked (the
SDKs never retry a refused registration), and no later profile links it (see
:func:`domain.subscriptions.check_user_key`). The hash itself is never stored: it is a credential,
which would let whoever reads it link another token to that person.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Literal, get_args

from core.secrets import SecretBox

Mode = Literal["off", "optional", "required"]
MODES: tuple[str, ...] = get_args(Mode)
#: The Campaign Classic additional parameter that carries the hash.
HASH_PARAM = "userKeyHash"
#: Why a user key did not link: no hash where one is required, or a hash that is not the right one.
MISSING, INVALID = "missing", "invalid"

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def new_secret() -> str:
    """A fresh secret: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def seal(box: SecretBox, secret: str) -> bytes:
    return box.seal({"user_key_secret": secret})


def unseal(box: SecretBox, sealed: bytes) -> str:
    return str(box.open(sealed)["user_key_secret"])


def user_key_hash(secret: str, user_key: str) -> str:
    """What the app's backend computes: HMAC-SHA256 keyed with the secret (its UTF-8 bytes, as
    shown) over the user key (the exact string the app sends, UTF-8), in lower-case hex."""
    return hmac.new(secret.encode(), user_key.encode(), hashlib.sha256).hexdigest()


def refusal(mode: str, secret: str | None, user_key: str | None, given: str | None) -> str | None:
    """Why ``user_key`` may not link under ``mode`` (:data:`MISSING` or :data:`INVALID`), or None
    when it may (or when there is no user key). ``secret`` is the app's, opened; an app with
    verification on and no secret refuses every hash (it cannot be vouched for)."""
    if not user_key or mode == "off":
        return None
    if not given:
        return MISSING if mode == "required" else None
    given = given.strip()
    if secret is None or not _HEX_SHA256.fullmatch(given):
        return INVALID
    if not hmac.compare_digest(user_key_hash(secret, user_key), given.lower()):
        return INVALID
    return None
