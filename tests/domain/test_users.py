"""Console users: e-mails stored lower-cased, argon2id hashes, no hint of which e-mails exist."""

from __future__ import annotations

import pytest
from flask import Flask

from core.errors import BadRequest, Conflict
from domain import users
from tests.conftest import runtime_of


def test_create_authenticate_and_change(app: Flask) -> None:
    with runtime_of(app).sessions.begin() as session:
        user, password = users.create_user(session, email=" Grace@Example.COM ", role="admin")
        assert user.email == "grace@example.com" and user.password_hash.startswith("$argon2id$")
        assert password not in user.password_hash
        assert users.authenticate(session, "GRACE@example.com", password) is user
        assert user.last_sign_in_at is not None
        assert users.authenticate(session, "grace@example.com", password + "x") is None
        assert users.authenticate(session, "nobody@example.com", password) is None
        version = users.password_version(user)
        users.change_password(session, user, password, "a brand new password")
        assert users.password_version(user) != version
        with pytest.raises(BadRequest, match="current password is not right"):
            users.change_password(session, user, password, "another new password")


def test_refusals(app: Flask) -> None:
    with runtime_of(app).sessions.begin() as session:
        users.create_user(session, email="a@example.com", role="viewer")
        with pytest.raises(Conflict):
            users.create_user(session, email="A@EXAMPLE.COM", role="viewer")
        with pytest.raises(BadRequest, match="role"):
            users.create_user(session, email="b@example.com", role="root")
        with pytest.raises(BadRequest, match="e-mail"):
            users.create_user(session, email="b@", role="viewer")
        with pytest.raises(BadRequest, match="at least"):
            users.create_user(session, email="b@example.com", role="viewer", password="short")
        with pytest.raises(BadRequest, match="printable"):
            users.create_user(session, email="b@example.com", role="viewer", password="tab\there-in-it")
        user = users.find(session, "a@example.com")
        assert user is not None
        assert users.authenticate(session, "a@example.com", "x" * 100_000) is None  # long input, bounded work
