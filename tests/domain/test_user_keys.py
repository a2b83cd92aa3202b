"""domain.user_keys and domain.subscriptions.check_user_key: which user keys link under each mode,
the hash's definition, and a dropped user key stored as none (the hash never stored)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy.orm import Session

from core.secrets import SecretBox
from domain import user_keys
from domain.subscriptions import KeyOwner, Registration, check_user_key, link_profile, register
from gateway.runtime import runtime
from store.models import Profile, Subscription
from tests.factories import make_app
from tests.values import crm_id, fcm_token

SECRET = user_keys.new_secret()
USER = crm_id(42)
RIGHT = user_keys.user_key_hash(SECRET, USER)


def test_the_hash_is_hmac_sha256_in_lower_case_hex() -> None:
    # RFC 2104 / the well-known HMAC-SHA256 example.
    assert (
        user_keys.user_key_hash("key", "The quick brown fox jumps over the lazy dog")
        == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )
    assert len(SECRET) == 43 and user_keys.new_secret() != SECRET


@pytest.mark.parametrize(
    ("mode", "given", "refused"),
    [
        ("off", None, None),
        ("off", "0" * 64, None),  # a hash sent to an app that does not verify is ignored
        ("optional", None, None),
        ("optional", "", None),
        ("optional", RIGHT, None),
        ("optional", RIGHT.upper(), None),
        ("optional", user_keys.user_key_hash(SECRET, crm_id(7)), user_keys.INVALID),
        ("required", None, user_keys.MISSING),
        ("required", "", user_keys.MISSING),
        ("required", RIGHT, None),
        ("required", f" {RIGHT}\n", None),
        ("required", RIGHT[:-1], user_keys.INVALID),
        ("required", "é" * 64, user_keys.INVALID),  # not hex: refused, not a comparison error
        ("required", user_keys.user_key_hash(user_keys.new_secret(), USER), user_keys.INVALID),
    ],
)
def test_which_user_keys_are_vouched_for(mode: str, given: str | None, refused: str | None) -> None:
    assert user_keys.refusal(mode, SECRET, USER, given) == refused


def test_no_user_key_needs_no_hash_and_no_secret_vouches_for_nothing() -> None:
    assert user_keys.refusal("required", SECRET, None, None) is None
    assert user_keys.refusal("required", SECRET, "", None) is None
    assert user_keys.refusal("required", None, USER, RIGHT) == user_keys.INVALID


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context(), runtime().sessions() as opened:
        yield opened


def _registration(app_id: int, token: str, **fields: Any) -> Registration:
    return Registration(
        app_id=app_id,
        platform="android",
        token=token,
        sdk="campaign-classic",
        push_provider="fcm",
        user_key=USER,
        sets_user_key=True,
        **fields,
    )


def test_a_dropped_user_key_is_stored_as_none_and_never_linked_later(app: Flask, session: Session) -> None:
    box = SecretBox(Fernet.generate_key())
    app_id = make_app(app)["id"]
    owner = KeyOwner(app_id, "android", "required", user_keys.seal(box, SECRET))
    vouched, reason = check_user_key(
        _registration(app_id, fcm_token("ada"), additional_params={"userKeyHash": RIGHT, "tier": "gold"}), owner, box
    )
    assert reason is None and vouched.user_key == USER
    claimed, reason = check_user_key(
        _registration(app_id, fcm_token("mallory"), user_key_hash="0" * 64, additional_params={}), owner, box
    )
    assert reason == user_keys.INVALID and claimed.user_key is None
    ids = [register(session, reg, reconciliation_field="external_id")[0] for reg in (vouched, claimed)]

    profile = Profile(external_id=USER, attributes={}, push_consent="u")
    session.add(profile)
    session.flush()
    assert link_profile(session, profile, "external_id") == 1
    ada, mallory = (session.get_one(Subscription, sub_id) for sub_id in ids)
    assert (ada.profile_id, ada.user_key, ada.additional_params) == (profile.id, USER, {"tier": "gold"})
    assert (mallory.profile_id, mallory.user_key) == (None, None)


def test_an_app_that_does_not_verify_keeps_the_registration_as_it_is() -> None:
    box = SecretBox(Fernet.generate_key())
    reg = _registration(1, fcm_token("ada"))
    assert check_user_key(reg, KeyOwner(1, "android"), box) == (reg, None)
    assert check_user_key(reg, KeyOwner(1, "android", "optional", user_keys.seal(box, SECRET)), box) == (reg, None)
    unsent = Registration(app_id=1, platform="android", token=fcm_token("ada"), sdk="edge", push_provider="fcm")
    assert check_user_key(unsent, KeyOwner(1, "android", "required"), box) == (unsent, None)
