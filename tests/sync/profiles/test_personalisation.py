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
from sqlalchemy import event

from domain import personalisation
from domain.personalisation import LookupTables
from domain.subscriptions import Registration, register
from gateway.worker import engine_settings
from push.engine import Engine
from push.providers.base import PushMessage, SendResult
from sync.peers.sftp import SftpPeer
from tests.conftest import Keys, runtime_of
from tests.factories import make_app, make_profile
from tests.sync.profiles.conftest import put, run_profiles
from tests.values import crm_id, fcm_token

TITLE = "{{ tables.offers[profile.attributes.offer_code].title | default('Our offers') }}"


def test_an_imported_table_renders_in_the_preview(
    app: Flask, client: FlaskClient, keys: Keys, peer: SftpPeer, sftp_root: Path
) -> None:
    ids = make_app(app)
    put(sftp_root, "profiles.csv", "external_id,first_name,offer_code\nCRM-000001,Ann,K1\nCRM-000002,Bob,K9\n")
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

    rendered = preview(crm_id(1))
    assert (rendered["title"], rendered["body"]) == ("Winter coat", "99 EUR")  # tables.nope...: empty
    assert preview(crm_id(2))["title"] == "Our offers"  # no row K9: missing, so the default
    assert preview(crm_id(1), "{{ tables.offers | length }} offer")["title"] == "1 offer"


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


def _send_to_all(
    app: Flask,
    client: FlaskClient,
    keys: Keys,
    offers: dict[str, str],
    users: dict[str, dict[str, Any]],
    title: str,
    body: str | None = "b",
) -> dict[str, str]:
    """Profiles ``users`` (external id -> attributes) with an Android subscription each, table
    ``offers`` (code -> title): send one delivery to all; returns title by user."""
    rt = runtime_of(app)
    ids = make_app(app)
    for user, attributes in users.items():
        make_profile(app, user, attributes=attributes)
    with rt.sessions.begin() as session:
        table_id = personalisation.replace_table(session, "offers", "code", ["title"])
        personalisation.put_rows(session, table_id, [(code, {"title": text}) for code, text in offers.items()])
        for user in users:
            register(
                session,
                Registration(
                    app_id=ids["id"],
                    platform="android",
                    token=fcm_token(user),
                    sdk="campaign-classic",
                    push_provider="fcm",
                    user_key=user,
                    sets_user_key=True,
                ),
                reconciliation_field="external_id",
            )
    message = {"title": title} if body is None else {"title": title, "body": body}
    request = {"app_id": ids["id"], "name": "Offers", "target": {"all": True}, "message": message}
    delivery = client.post("/api/v1/deliveries", json=request, headers=keys.marketer).get_json()
    provider = Recording()
    engine = Engine(rt.sessions, lambda part: provider, engine_settings(rt))
    engine.start_due()
    while asyncio.run(engine.run_batch(delivery["id"])):
        pass
    users_by_token = {fcm_token(user): user for user in users}
    return {users_by_token[m.token]: m.payload["data"]["adb_title"] for m in provider.sent}


def test_the_engine_renders_an_imported_table(app: Flask, client: FlaskClient, keys: Keys) -> None:
    users = {crm_id(1): {"offer_code": "K1"}, crm_id(2): {"offer_code": "K2"}}
    titles = _send_to_all(app, client, keys, {"K1": "Winter coat"}, users, TITLE)
    assert titles == {crm_id(1): "Winter coat", crm_id(2): "Our offers"}


def test_a_batch_reads_its_table_rows_in_one_query(app: Flask, client: FlaskClient, keys: Keys) -> None:
    """A key per profile: one query for the batch's rows, not one per message (each of those ran
    on the engine's event loop), and every message as if rendered one by one."""
    users = {crm_id(i): {"offer_code": f"K{i}"} for i in range(30)}
    offers = {f"K{i}": f"Offer {i}" for i in range(0, 30, 2)}  # odd codes have no row
    queries: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM lookup_row" in statement:
            queries.append(statement)

    engine = runtime_of(app).engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        titles = _send_to_all(app, client, keys, offers, users, TITLE)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert titles == {crm_id(i): f"Offer {i}" if i % 2 == 0 else "Our offers" for i in range(30)}
    assert len(queries) == 1, queries


def test_a_row_read_through_another_row_is_still_found(app: Flask, client: FlaskClient, keys: Keys) -> None:
    """The second key only exists once the first row is read: its rows are read again, one by one."""
    users = {crm_id(1): {"offer_code": "K1"}, crm_id(2): {"offer_code": "K2"}, crm_id(3): {"offer_code": "K9"}}
    offers = {"K1": "K2", "K2": "Scarf"}
    chained = "{{ tables.offers[tables.offers[profile.attributes.offer_code].title].title | default('none') }}"
    titles = _send_to_all(app, client, keys, offers, users, chained)
    assert titles == {crm_id(1): "Scarf", crm_id(2): "none", crm_id(3): "none"}


def test_a_message_empty_for_want_of_a_deferred_row_is_built_again(app: Flask, client: FlaskClient, keys: Keys) -> None:
    """Title from the table, no body: while its row is deferred the push would be empty (a
    failure); once the row is read it is sent."""
    title = "{{ tables.offers[profile.attributes.offer_code].title }}"
    titles = _send_to_all(app, client, keys, {"K1": "Winter coat"}, {crm_id(1): {"offer_code": "K1"}}, title, body=None)
    assert titles == {crm_id(1): "Winter coat"}


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


def test_deferred_rows_are_read_together(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime_of(app)
    with rt.sessions.begin() as session:
        table_id = personalisation.replace_table(session, "offers", "code", ["title"])
        personalisation.put_rows(session, table_id, [(f"K{i}", {"title": f"Offer {i}"}) for i in range(5)])
    opened = 0

    def sessions() -> Any:
        nonlocal opened
        opened += 1
        return rt.sessions()

    monkeypatch.setattr(personalisation, "LOAD_CHUNK", 2)
    tables = LookupTables(sessions)
    offers = tables["offers"]
    assert offers["K0"]["title"] == "Offer 0" and opened == 2
    with tables.deferring():
        assert offers["K0"]["title"] == "Offer 0"  # cached: read, not deferred
        assert tables.deferred == 0
        for key in ("K1", "K2", "K3", "K99", "K1"):
            with pytest.raises(KeyError):
                offers[key]  # not cached yet: missing for now, and noted
        assert tables.deferred == 5
    assert opened == 2  # nothing queried while deferring
    assert tables.load_pending() == 4  # K1, K2, K3, K99: two queries of two keys
    assert tables.load_pending() == 0
    assert offers["K3"]["title"] == "Offer 3" and offers["K1"]["title"] == "Offer 1"
    with pytest.raises(KeyError):
        offers["K99"]  # its absence is cached too
    assert opened == 3  # one session for all of the loading, none for the reads after it
    assert offers["K4"]["title"] == "Offer 4" and opened == 4  # not deferring: read at once
