"""The secret key check: written once with the database's key, refusing any other key, and never
written with a key that cannot open what the database already holds sealed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import func, select

from core.errors import ConfigError
from core.secrets import SecretBox
from store import db as store_db
from store.models import PrivacyRequest, SecretCheck
from store.secret_check import check_secret_key
from tests.conftest import runtime_of
from tests.factories import make_app

WRONG = "the key differs"


def other_box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


def checks(app: Flask) -> list[bytes]:
    with runtime_of(app).sessions() as session:
        return list(session.scalars(select(SecretCheck.sealed)))


def test_the_first_start_writes_the_check_value_and_other_keys_are_refused_after(app: Flask) -> None:
    rt = runtime_of(app)
    check_secret_key(rt.engine, rt.box, WRONG)
    (sealed,) = checks(app)
    assert rt.box.opens(sealed)
    check_secret_key(rt.engine, rt.box, WRONG)  # the same key, again: fine, nothing rewritten
    assert checks(app) == [sealed]
    with pytest.raises(ConfigError) as refused:
        check_secret_key(rt.engine, other_box(), WRONG)
    assert str(refused.value) == WRONG
    assert checks(app) == [sealed]


def test_a_database_from_before_the_check_is_not_vouched_for_by_a_key_that_cannot_open_it(app: Flask) -> None:
    rt = runtime_of(app)
    make_app(app)  # credentials sealed with the gateway's key, and no check value yet
    with pytest.raises(ConfigError, match=WRONG):
        check_secret_key(rt.engine, other_box(), WRONG)
    assert checks(app) == []  # the wrong key was not written down as the right one
    check_secret_key(rt.engine, rt.box, WRONG)
    assert len(checks(app)) == 1


def test_every_sealed_column_is_looked_at(app: Flask) -> None:
    rt = runtime_of(app)
    with rt.sessions.begin() as session:  # an erasure queued for the Platform: sealed identities
        session.add(PrivacyRequest(identities=rt.box.seal({"external_id": "x", "email": None})))
    with pytest.raises(ConfigError, match=WRONG):
        check_secret_key(rt.engine, other_box(), WRONG)
    check_secret_key(rt.engine, rt.box, WRONG)
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SecretCheck)) == 1


def test_a_database_not_migrated_that_far_is_not_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store_db.upgrade(url, "0012")
    engine = store_db.make_engine(url)
    try:
        check_secret_key(engine, other_box(), WRONG)  # no table: the upgrade comes first
        store_db.upgrade(url)
        box = other_box()
        check_secret_key(engine, box, WRONG)  # an empty database: any key may be its key
        with pytest.raises(ConfigError, match=WRONG):
            check_secret_key(engine, other_box(), WRONG)
        check_secret_key(engine, box, WRONG)
    finally:
        engine.dispose()
