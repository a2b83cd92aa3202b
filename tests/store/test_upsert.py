"""store.upsert: the statement sent straight to the driver does what SQLAlchemy's own execution
of it did (rows, types, the inserted flag), through a session or a connection, and shapes it
cannot send that way still go through SQLAlchemy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from domain.subscriptions import _PROFILE_ID_OF
from store.models import Profile, Subscription
from store.types import utcnow
from store.upsert import _driver, _statement, upsert
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.values import crm_id, fcm_token

TOKEN_1, TOKEN_2 = fcm_token(1), fcm_token(2)
ALICE, BOB = crm_id(4211), crm_id(4212)  # user keys: CRM ids, the external_id reconciliation
UPDATE = ["platform", "sdk", "user_key", "profile_id", "additional_params", "last_registered_at"]
COMPUTED = {"profile_id": _PROFILE_ID_OF["external_id"]}


def _plain(value: Any) -> Any:
    return getattr(value, "obj", value)  # psycopg's Jsonb wrapper compares by identity


def _values(app_id: int, token: str, user_key: str | None, **more: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "app_id": app_id,
        "platform": "android",
        "token": token,
        "sdk": "campaign-classic",
        "push_provider": "fcm",
        "created_at": now,
        "last_registered_at": now,
        "disabled": False,
        "additional_params": {"vip": "true", "score": "1.0E7"},
        "user_key": user_key,
        "b_user_key": user_key,
        **more,
    }


@pytest.mark.parametrize("through", ["session", "connection"])
def test_insert_then_update_through_the_driver(app: Flask, through: str) -> None:
    rt = runtime_of(app)
    app_id = make_app(app)["id"]
    with rt.sessions.begin() as session:
        session.add(Profile(external_id=ALICE))

    def run(values: dict[str, Any]) -> tuple[Any, bool]:
        if through == "session":
            with rt.sessions.begin() as session:
                return upsert(
                    session, Subscription, values, conflict=("app_id", "token"), update=UPDATE, computed=COMPUTED
                )
        with rt.engine.begin() as connection:
            return upsert(
                connection, Subscription, values, conflict=("app_id", "token"), update=UPDATE, computed=COMPUTED
            )

    first = _values(app_id, TOKEN_1, ALICE, device_name="oriole")
    sub_id, created = run(first)
    assert created
    later = _values(app_id, TOKEN_1, BOB, additional_params={}, device_name="oriole")
    later["last_registered_at"] += timedelta(seconds=5)
    assert run(later) == (sub_id, False)

    with rt.sessions() as session:
        sub = session.scalars(select(Subscription).where(Subscription.id == sub_id)).one()
        alice = session.scalars(select(Profile).where(Profile.external_id == ALICE)).one()
        assert (sub.user_key, sub.profile_id, sub.additional_params) == (BOB, None, {})
        assert (sub.created_at, sub.last_registered_at) == (first["created_at"], later["last_registered_at"])
        assert sub.disabled is False and sub.device_name == "oriole"
        other_id, created = run(_values(app_id, TOKEN_2, ALICE))
        assert created
        session.expire_all()
        assert session.get(Subscription, other_id).profile_id == alice.id  # type: ignore[union-attr]


def test_the_driver_statement_is_the_one_sqlalchemy_runs(app: Flask) -> None:
    engine = runtime_of(app).engine
    values = _values(1, TOKEN_1, ALICE)
    columns = tuple(name for name in values if name in Subscription.__table__.c)
    stmt = _statement(
        engine.dialect.name,
        Subscription.__table__,
        columns,
        ("app_id", "token"),
        tuple(UPDATE),
        tuple(COMPUTED.items()),
    )
    driver = _driver(engine.dialect, Subscription.__table__, stmt, columns)
    assert driver is not None
    compiled = stmt.compile(dialect=engine.dialect, column_keys=list(columns))  # type: ignore[attr-defined]
    assert driver.sql == compiled.string
    parameters, created_at = driver.parameters(values)
    expected = compiled.construct_params(values)
    processors = compiled._bind_processors
    names = compiled.positiontup if isinstance(parameters, tuple) else list(expected)
    sent = parameters if isinstance(parameters, tuple) else tuple(parameters[n] for n in names)
    assert [_plain(v) for v in sent] == [
        _plain(processors[n](expected[n]) if n in processors else expected[n]) for n in names
    ]
    assert created_at == processors["created_at"](values["created_at"])


def test_a_missing_parameter_is_refused(app: Flask) -> None:
    app_id = make_app(app)["id"]
    values = _values(app_id, TOKEN_1, ALICE)
    del values["b_user_key"]
    with runtime_of(app).engine.begin() as connection, pytest.raises(StatementError, match="b_user_key"):
        upsert(connection, Subscription, values, conflict=("app_id", "token"), update=UPDATE, computed=COMPUTED)


def test_columns_left_to_their_python_defaults_go_through_sqlalchemy(app: Flask) -> None:
    rt = runtime_of(app)
    app_id = make_app(app)["id"]
    values = _values(app_id, TOKEN_1, None)
    for name in ("disabled", "additional_params", "last_registered_at"):
        del values[name]
    columns = tuple(name for name in values if name in Subscription.__table__.c)
    stmt = _statement(rt.engine.dialect.name, Subscription.__table__, columns, ("app_id", "token"), ("sdk",), ())
    assert _driver(rt.engine.dialect, Subscription.__table__, stmt, columns) is None
    with rt.sessions.begin() as session:
        sub_id, created = upsert(session, Subscription, values, conflict=("app_id", "token"), update=("sdk",))
    assert created
    with rt.sessions() as session:
        sub = session.get(Subscription, sub_id)
        assert sub is not None and sub.disabled is False and sub.additional_params == {}
        assert sub.last_registered_at is not None
