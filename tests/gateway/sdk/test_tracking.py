"""``/r/`` tracking in the Classic and Standard forms (docs/protocols.md §1.2, §2.3)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import make_app, make_sent_message, push_ids, tracking_rows
from tests.values import ECID


@pytest.fixture
def sent(app: Flask) -> tuple[int, int]:
    ids = make_app(app)
    return make_sent_message(app, ids["id"])


def test_classic_receive_and_click_with_android_and_ios_hex(app: Flask, client: FlaskClient, sent) -> None:
    broadlog_id, delivery_id = sent
    _mid, did = push_ids(app, broadlog_id, delivery_id, "campaign-classic")  # _dId carries the signature
    android = f"h{broadlog_id:x}"  # Android: plain lower-case hex
    ios = f"h{broadlog_id:02x}"  # iOS pads to two digits
    assert client.get(f"/r/?id={android},{did},1").status_code == 200
    assert client.get(f"/r/?id={ios},{did},2").status_code == 200
    rows = tracking_rows(app)
    assert [(r["interaction"], r["source"], r["tag"]) for r in rows] == [
        ("received", "campaign-classic", "1"),
        ("opened", "campaign-classic", "2"),
    ]
    assert all(r["broadlog_id"] == broadlog_id and r["delivery_id"] == delivery_id for r in rows)


def test_standard_actions_with_ecid(app: Flask, client: FlaskClient, sent) -> None:
    broadlog_id, delivery_id = sent
    mid, did = push_ids(app, broadlog_id, delivery_id, "campaign-standard")  # _mId carries the signature
    assert did == f"{delivery_id:x}"  # the Android SDK parses _dId as a hex int
    for action in ("7", "1", "2", "3"):
        url = f"/r/?id={mid},{did},{action}&mcId={ECID}"
        assert client.get(url).status_code == 200
    rows = tracking_rows(app)
    assert [r["interaction"] for r in rows] == ["received", "opened", "clicked", "clicked"]
    assert {r["source"] for r in rows} == {"campaign-standard"}
    assert rows[0]["ecid"] == ECID


@pytest.mark.parametrize(
    "query",
    [
        "",
        "id=",
        "id=garbage",
        "id=h1,1",
        "id=hzz,1,1",
        "id=h{m},{d},9",
        "id=h{m},ff,1",
        "id={uuid},{d},1",
        "id=h{m},{d},1,extra",
        "id=h%00,{d},1",
        "id=h{m},{d},1",  # no signature: the delivery was sent signed
        "id=h{m},{d}.AAAAAAAAAAA,1",  # a signature, not this message's
        "id={m10}.{sig},{d}.{sig},1&mcId=1",  # on both ids
        "id=h{other},{d}.{sig},1",  # another message of the delivery, with this one's signature
    ],
)
def test_unknown_or_malformed_ids_record_nothing_and_answer_200(app: Flask, client: FlaskClient, sent, query) -> None:
    broadlog_id, delivery_id = sent
    mac = push_ids(app, broadlog_id, delivery_id)[1].partition(".")[2]
    url = "/r/?" + query.format(
        m=f"{broadlog_id:x}",
        m10=broadlog_id,
        d=f"{delivery_id:x}",
        sig=mac,
        other=f"{broadlog_id + 1:x}",
        uuid="0b3f5e6c-1a2b-4c3d-9e8f-0123456789ab",
    )
    response = client.get(url)
    assert response.status_code == 200 and response.data == b""
    assert tracking_rows(app) == []


def test_messages_not_sent_are_not_tracked(app: Flask, client: FlaskClient) -> None:
    ids = make_app(app)
    pending, delivery_id = make_sent_message(app, ids["id"], status=6)
    assert client.get(f"/r/?id=h{pending:x},{push_ids(app, pending, delivery_id)[1]},1").status_code == 200
    assert tracking_rows(app) == []


def test_deliveries_sent_before_signing_are_tracked_by_their_ids(app: Flask, client: FlaskClient) -> None:
    ids = make_app(app)
    broadlog_id, delivery_id = make_sent_message(app, ids["id"], signed_tracking=False)
    assert client.get(f"/r/?id=h{broadlog_id:x},{delivery_id:x},2").status_code == 200
    assert [r["interaction"] for r in tracking_rows(app)] == ["opened"]
