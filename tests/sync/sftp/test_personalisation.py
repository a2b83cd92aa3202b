"""Personalisation tables imported over sFTP, read by message templates: the preview, the delivery
engine, and the lazy, bounded lookup mapping itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain import personalisation
from domain.personalisation import LookupTables
from domain.subscriptions import Registration, register
from gateway.worker import engine_settings
from push.engine import Engine
from push.providers.base import PushMessage, SendResult
from sync.peers.sftp import SftpPeer
from tests.conftest import Keys, runtime_of
from tests.factories import make_app, make_profile
from tests.sync.sftp.conftest import put, run_profiles

TITLE = "{{ tables.offers[profile.attributes.offer_code].title | default('Our offers') }}"


def test_an_imported_table_renders_in_the_preview(
    app: Flask, client: FlaskClient, keys: Keys, peer: SftpPeer, sftp_root: Path
) -> None:
    ids = make_app(app)
    put(sftp_root, "profiles.csv", "external_id,first_name,offer_code\np-1,Ann,K1\np-2,Bob,K9\n")
    put(sftp_root, "data_offers.csv", "code,title,price\nK1,Winter coat,99\n")
    assert run_profiles(app).status == "succeeded"

    def preview(profile: str, title: str = TITLE) -> dict[str, Any]:
        body = {
            "app_id": ids["id"],
            "profile": profile,
            "message": {"title": title, "body": "{{ tables.offers.K1.price }} EUR{{ tables.nope.x.y }}"},
        }
        response = client.post("/api/v1/deliveries/preview", json=body, headers=keys.marketer)
        assert response.status_code == 200, response.json
        rendered: dict[str, Any] = response.get_json()["android"]["rendered"]
        return rendered

    rendered = preview("p-1")
    assert (rendered["title"], rendered["body"]) == ("Winter coat", "99 EUR")  # tables.nope...: empty
    assert preview("p-2")["title"] == "Our offers"  # no row K9: missing, so the default
    assert preview("p-1", "{{ tables.offers | length }} offer")["title"] == "1 offer"


class Recording:
    """A real provider that accepts everything and keeps what it was given."""

    platform = "android"

    def __init__(self) -> None:
        self.sent: list[PushMessage] = []

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        self.sent.extend(messages)
        return [SendResult(m.key, provider_message_id=f"pm-{m.key}") for m in messages]

    async def close(self) -> None:
        return None


def test_the_engine_renders_an_imported_table(app: Flask, client: FlaskClient, keys: Keys) -> None:
    rt = runtime_of(app)
    ids = make_app(app)
    make_profile(app, "p-1", attributes={"offer_code": "K1"})
    make_profile(app, "p-2", attributes={"offer_code": "K2"})
    with rt.sessions.begin() as session:
        table_id = personalisation.replace_table(session, "offers", "code", ["title"])
        personalisation.put_rows(session, table_id, [("K1", {"title": "Winter coat"})])
        for user in ("p-1", "p-2"):
            register(
                session,
                Registration(
                    app_id=ids["id"],
                    platform="android",
                    token=f"token-{user}",
                    sdk="campaign-classic",
                    push_provider="fcm",
                    user_key=user,
                    sets_user_key=True,
                ),
                reconciliation_field="external_id",
            )
    body = {"app_id": ids["id"], "name": "Offers", "target": {"all": True}, "message": {"title": TITLE, "body": "b"}}
    delivery = client.post("/api/v1/deliveries", json=body, headers=keys.marketer).get_json()
    provider = Recording()
    engine = Engine(rt.sessions, lambda part: provider, engine_settings(rt))
    engine.start_due()
    while asyncio.run(engine.run_batch(delivery["id"])):
        pass
    titles = {m.token: m.payload["data"]["adb_title"] for m in provider.sent}
    assert titles == {"token-p-1": "Winter coat", "token-p-2": "Our offers"}


def test_lookups_are_lazy_cached_and_bounded(app: Flask) -> None:
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        table_id = personalisation.replace_table(session, "offers", "code", ["title"])
        personalisation.put_rows(session, table_id, [(f"K{i}", {"title": f"Offer {i}"}) for i in range(5)])
        personalisation.put_rows(session, table_id, [("7", {"title": "Numbered"})])
    opened = 0

    def sessions() -> Any:
        nonlocal opened
        opened += 1
        return rt.sessions()

    tables = LookupTables(sessions, max_rows=3)
    offers = tables["offers"]
    assert offers["K1"]["title"] == "Offer 1" and offers["K1"]["title"] == "Offer 1"
    assert opened == 2  # the table, then the row once
    assert offers[7]["title"] == "Numbered"  # an integer key reads as its text
    for missing in ("K99", None, True, "", "x" * 300):
        with pytest.raises(KeyError):
            offers[missing]
    with pytest.raises(KeyError):
        tables["nope"]
    assert len(tables._cache) == 3  # bounded: the oldest entries were dropped
    with pytest.raises(TypeError, match="read by key"):
        list(offers)
    assert len(offers) == 6 and list(tables) == ["offers"]
    with pytest.raises(TypeError):
        offers["K1"]["title"] = "changed"  # type: ignore[index]
