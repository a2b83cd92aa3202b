"""domain.profiles over a real session: reconciliation by e-mail, erasure of unlinked user keys,
and the retry when a concurrent request creates the same profile first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import erasure, profiles
from domain.subscriptions import Registration, register
from gateway.runtime import runtime
from store.models import Profile, Subscription
from tests.factories import make_app


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context(), runtime().sessions() as opened:
        yield opened


def _subscribe(session: Session, app_id: int, token: str, user_key: str) -> int:
    sub_id, _ = register(
        session,
        Registration(
            app_id=app_id,
            platform="android",
            token=token,
            sdk="native",
            push_provider="fcm",
            user_key=user_key,
            sets_user_key=True,
        ),
        reconciliation_field="email",
    )
    return sub_id


def test_email_reconciliation_links_and_erasure_removes_every_subscription_naming_the_person(
    app: Flask, session: Session
) -> None:
    app_id = make_app(app)["id"]
    early = _subscribe(session, app_id, "tok-early", "eve@example.com")
    data = profiles.ProfileIn.model_validate({"email": "eve@example.com"})
    profile, created = profiles.upsert_profile(session, "eve", data, reconciliation_field="email")
    assert created
    assert session.get_one(Subscription, early).profile_id == profile.id
    # Registered while the reconciliation field pointed elsewhere: unlinked, but naming Eve.
    stray = _subscribe(session, app_id, "tok-stray", "eve@example.com")
    session.get_one(Subscription, stray).profile_id = None
    session.flush()

    counts = erasure.erase_profile(session, "eve", reconciliation_field="email", box=runtime().box)

    assert counts["subscriptions"] == 2  # both named Eve: linked, or by their user key
    session.expire_all()
    assert session.scalars(select(Subscription)).all() == []
    assert session.scalars(select(Profile)).all() == []


def test_a_lost_creation_race_is_retried_as_an_update(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context(), runtime().sessions.begin() as other:
        other.add(Profile(external_id="racer", first_name="First", attributes={}, push_consent="u"))
    real_find = profiles.find
    calls = []

    def stale_find(s: Session, external_id: str) -> Profile | None:
        calls.append(external_id)
        return None if len(calls) == 1 else real_find(s, external_id)  # first look misses the winner's row

    monkeypatch.setattr(profiles, "find", stale_find)
    data = profiles.ProfileIn.model_validate({"last_name": "Second"})
    profile, created = profiles.upsert_profile(session, "racer", data, reconciliation_field="external_id")
    session.commit()
    assert not created and len(calls) == 2
    assert (profile.first_name, profile.last_name) == ("First", "Second")


@pytest.mark.parametrize(
    ("given", "stored"),
    [("en-us", "en-US"), ("EN_GB", "en-GB"), ("sr-latn-rs", "sr-Latn-RS"), ("es-419", "es-419"), ("de", "de")],
)
def test_locales(given: str, stored: str) -> None:
    assert profiles.ProfileIn.model_validate({"locale": given}).locale == stored


@pytest.mark.parametrize("zone", ["UTC", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
def test_real_zones_are_accepted(zone: str) -> None:
    assert profiles.ProfileIn.model_validate({"timezone": zone}).timezone == zone


@pytest.mark.parametrize("zone", ["", "Europe", "/usr/share/zoneinfo/UTC", "UTC\u0000", "GMT+25"])
def test_other_zones_are_refused(zone: str) -> None:
    with pytest.raises(ValidationError):
        profiles.ProfileIn.model_validate({"timezone": zone})
