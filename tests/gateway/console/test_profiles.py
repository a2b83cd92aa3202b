"""The console's profile pages through Flask's test client: the search (external id, e-mail, ECID,
push token; paging; bad values), a profile's page (attributes, consent, subscriptions with the
quarantined one marked, audiences, recent messages with tracking), ids of every shape in the URL,
unknown profiles, and the cost of a page in queries."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask

from domain import quarantine, subscriptions, tracking
from store.codes import BroadLogStatus, FailureReason, FailureType
from store.models import BroadLog, Delivery
from tests.conftest import runtime_of
from tests.factories import make_app, make_profile
from tests.gateway.console.conftest import ConsoleClient
from tests.gateway.console.test_audiences import SEG_CART, SEG_VIP, counting_queries, links, seed_audience
from tests.values import apns_token, crm_id, ecid, fcm_token

#: What FCM answers for the token of an app that was uninstalled, as the worker records it.
GONE = "UNREGISTERED (FCM 404): the app was uninstalled"


@dataclass(frozen=True)
class Person:
    """What :func:`seed_person` made."""

    external_id: str
    email: str
    profile_id: int
    app_id: int
    ecid: str
    ios_token: str
    android_token: str
    deliveries: dict[str, int]
    audience_id: int


def add_message(
    application: Flask,
    app_id: int,
    name: str,
    *,
    subscription_id: int,
    profile_id: int,
    platform: str,
    token: str,
    status: BroadLogStatus,
    failure: tuple[FailureType, FailureReason, str | None] | None = None,
    when: datetime,
) -> tuple[int, int]:
    """A delivery of ``name`` with the broadLog row of one message to the profile's token, as the
    worker leaves it; returns (broadlog id, delivery id)."""
    with runtime_of(application).sessions.begin() as session:
        delivery = Delivery(
            app_id=app_id,
            name=name,
            message={"title": name, "body": "Hello {{ profile.first_name }}"},
            target={"all": True},
            platforms=["ios", "android"],
            status="completed",
            created_by="marketer@example.com",
            started_at=when,
            ended_at=when,
        )
        session.add(delivery)
        session.flush()
        failure_type, reason, text = failure or (None, None, None)
        row = BroadLog(
            delivery_id=delivery.id,
            subscription_id=subscription_id,
            profile_id=profile_id,
            channel=41 if platform == "ios" else 42,
            address=token,
            status=int(status),
            failure_type=failure_type,
            failure_reason=reason,
            error_message=text,
            attempts=1,
            created_at=when,
            event_date=when,
        )
        session.add(row)
        session.flush()
        return row.id, delivery.id


def seed_person(
    application: Flask,
    external_id: str = crm_id(4211),
    email: str = "ada.lovelace@example.com",
    other_vips: Sequence[tuple[int, str]] = (),
) -> Person:
    """Ada with everything a profile page shows: fields, custom attributes, consent; an iPhone and
    an Android phone registered through the Classic SDK with her external id as user key, the
    Android token quarantined after FCM said it is unregistered; member of VIP customers (with
    ``other_vips``), once of Abandoned cart; three messages: sent and opened, failed, ignored."""
    app = make_app(application)
    profile_id = make_profile(
        application,
        external_id,
        email=email,
        first_name="Ada",
        last_name="Lovelace",
        locale="en-GB",
        timezone="Europe/London",
        attributes={"tier": "gold", "points": 1200, "stores": ["Paris", "London"], "address": {"city": "London"}},
        push_consent="y",
    )
    person_ecid = ecid(external_id)
    tokens = {"ios": apns_token(f"{external_id}-iphone"), "android": fcm_token(f"{external_id}-pixel")}
    devices = {
        "ios": {"device_brand": "Apple", "device_model": "iPhone15,2", "os_name": "iOS", "os_version": "18.1"},
        "android": {"device_brand": "Google", "device_model": "Pixel 8", "os_name": "Android", "os_version": "15"},
    }
    rt = runtime_of(application)
    sub_ids = {}
    with rt.sessions.begin() as session:
        for platform, token in tokens.items():
            registration = subscriptions.Registration(
                app_id=app["id"],
                platform=platform,
                token=token,
                sdk="campaign-classic",
                push_provider="apns" if platform == "ios" else "fcm",
                user_key=external_id,
                sets_user_key=True,
                ecid=person_ecid,
                device=dict(devices[platform]),
            )
            sub_ids[platform], _ = subscriptions.register(session, registration, reconciliation_field="external_id")
    messages = {}
    for day, name, platform, status, failure in (
        (3, "Spring sale", "ios", BroadLogStatus.SENT, None),
        (4, "Cart reminder", "android", BroadLogStatus.FAILED, (FailureType.HARD, FailureReason.USER_UNKNOWN, GONE)),
        (
            5,
            "Weekend offer",
            "android",
            BroadLogStatus.IGNORED,
            (FailureType.IGNORED, FailureReason.IN_QUARANTINE, None),
        ),
    ):
        messages[name] = add_message(
            application, app["id"], name, subscription_id=sub_ids[platform], profile_id=profile_id, platform=platform,
            token=tokens[platform], status=status, failure=failure, when=datetime(2026, 12, day, 9, 30, tzinfo=UTC),
        )  # fmt: skip
    with rt.sessions.begin() as session:
        quarantine.record_hard_error(
            session, app_id=app["id"], platform="android", token=tokens["android"],
            reason=int(FailureReason.USER_UNKNOWN), text=GONE, now=datetime(2026, 12, 4, 9, 30, tzinfo=UTC),
        )  # fmt: skip
        spring, spring_delivery = messages["Spring sale"]
        for interaction, tag in ((tracking.RECEIVED, "1"), (tracking.OPENED, "2")):
            mac = tracking.signature(rt.tracking_key, spring, spring_delivery)
            call = tracking.TrackingCall(spring, spring_delivery, interaction, "campaign-classic", tag, signature=mac)
            assert tracking.record(session, call, key=rt.tracking_key)
    vip = seed_audience(
        application, SEG_VIP, "VIP customers", [(profile_id, "realized"), *other_vips], files=[(12, 0, 0), (1, 11, 2)]
    )
    seed_audience(application, SEG_CART, "Abandoned cart", [(profile_id, "exited")])
    return Person(
        external_id=external_id,
        email=email,
        profile_id=profile_id,
        app_id=app["id"],
        ecid=person_ecid,
        ios_token=tokens["ios"],
        android_token=tokens["android"],
        deliveries={name: delivery_id for name, (_, delivery_id) in messages.items()},
        audience_id=vip,
    )


def profile_links(page: str) -> dict[str, str]:
    """The links of a page's table rows to profile pages: external id -> href."""
    rows = "".join(part.split("</tbody>")[0] for part in page.split("<tbody>")[1:])
    return {text: href for text, href in links(rows).items() if href.startswith("/console/profiles/")}


def section(page: str, heading_id: str) -> str:
    """The part of the page from the heading ``heading_id`` to the next h2."""
    return page.split(f'id="{heading_id}"')[1].split("<h2", maxsplit=1)[0]


@pytest.fixture
def viewer(console_as: Callable[[str], ConsoleClient]) -> ConsoleClient:
    return console_as("viewer")


@pytest.fixture
def ada(app: Flask) -> Person:
    return seed_person(app)


# -- search ---------------------------------------------------------------------------------------


def test_search_finds_a_profile_by_email_external_id_ecid_or_push_token(
    app: Flask, viewer: ConsoleClient, ada: Person
) -> None:
    make_profile(app, crm_id(4212), email="grace.hopper@example.com", first_name="Grace")
    for query in (
        {"email": ada.email},
        {"external_id": ada.external_id},
        {"ecid": ada.ecid},
        {"token": ada.ios_token},
        {"token": ada.ios_token.upper()},  # as setPushIdentifier sends it: stored lower-case
        {"token": ada.android_token},
        {"email": ada.email, "external_id": ada.external_id},
    ):
        response = viewer.get("/console/profiles/", query_string=query)
        assert response.status_code == 200, query
        page = response.get_data(as_text=True)
        assert list(profile_links(page)) == [ada.external_id], query
        assert "Matching profiles" in page
        for name, value in query.items():
            assert f'name="{name}" type="text" value="{html.escape(value)}"' in page  # kept in the form
    row = viewer.get("/console/profiles/", query_string={"email": ada.email}).get_data(as_text=True)
    assert "Ada Lovelace" in row and '<td class="num">2</td>' in row and "<td>Yes</td>" in row


def test_search_matches_exactly_and_says_when_nothing_matches(viewer: ConsoleClient, ada: Person) -> None:
    for query in (
        {"email": "ADA.LOVELACE@example.com"},
        {"email": "ada"},
        {"external_id": ada.external_id.lower()},
        {"ecid": ada.ecid[:-1]},
        {"token": ada.android_token.upper()},  # FCM tokens are case-sensitive
        {"email": ada.email, "external_id": crm_id(1)},  # every field given must match
    ):
        page = viewer.get("/console/profiles/", query_string=query).get_data(as_text=True)
        assert profile_links(page) == {}, query
        assert "No profile matches this search." in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "a" * 321, "at most 320 characters"),
        ("external_id", "x" * 256, "at most 255 characters"),
        ("ecid", "1" * 65, "at most 64 characters"),
        ("token", "f" * 1025, "at most 1024 characters"),
        ("email", "ada\x00@example.com", "must not contain control characters"),
        ("external_id", "CRM\n1", "must not contain control characters"),
    ],
)
def test_a_search_value_the_store_cannot_hold_is_an_inline_error(
    viewer: ConsoleClient, ada: Person, field: str, value: str, message: str
) -> None:
    response = viewer.get(
        "/console/profiles/", query_string={field: value, "email" if field != "email" else "ecid": ""}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    error = page.split(f'id="f-{field}"')[1].split("</div>")[0]
    assert 'class="error" role="alert"' in error and message in error
    assert profile_links(page) == {}


def test_without_criteria_every_profile_is_listed_fifty_at_a_time(app: Flask, viewer: ConsoleClient) -> None:
    for n in range(55):
        make_profile(app, crm_id(n + 1))
    first = viewer.get("/console/profiles/").get_data(as_text=True)
    assert "All profiles" in first
    assert list(profile_links(first)) == [crm_id(n + 1) for n in range(50)]
    second = viewer.get(links(first)["Next page"]).get_data(as_text=True)
    assert list(profile_links(second)) == [crm_id(n + 1) for n in range(50, 55)]
    assert "Next page" not in second and links(second)["First page"] == "/console/profiles/"
    paged = viewer.get("/console/profiles/", query_string={"email": "none@example.com", "after": "3"})
    assert links(paged.get_data(as_text=True))["First page"] == "/console/profiles/?email=none@example.com"
    assert viewer.get("/console/profiles/?after=soon").status_code == 400


# -- a profile's page -----------------------------------------------------------------------------


def test_the_profile_page_shows_attributes_and_consent(viewer: ConsoleClient, ada: Person) -> None:
    response = viewer.get(f"/console/profiles/{ada.external_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Ada Lovelace" in page and ada.external_id in page
    attributes = section(page, "attributes")
    for label, value in (
        ("Email", ada.email),
        ("First name", "Ada"),
        ("Last name", "Lovelace"),
        ("Locale", "en-GB"),
        ("Time zone", "Europe/London"),
    ):
        assert f"<dt>{label}</dt><dd>{value}</dd>" in attributes
    custom = section(page, "custom")
    assert "<code>tier</code></th>\n        <td>gold</td>" in custom
    assert "<code>points</code></th>\n        <td><code>1200</code></td>" in custom
    assert '<pre>[\n  "Paris",\n  "London"\n]</pre>' in custom
    assert '<pre>{\n  "city": "London"\n}</pre>' in custom
    consent = section(page, "consent")
    assert "Push consent" in consent and ">Yes</span>" in consent


def test_the_profile_page_marks_the_quarantined_subscription(viewer: ConsoleClient, ada: Person) -> None:
    page = viewer.get(f"/console/profiles/{ada.external_id}").get_data(as_text=True)
    rows = section(page, "subscriptions").split("<tbody>")[1].split("</tr>")[:-1]
    assert len(rows) == 2
    by_token = {next(t for t in (ada.ios_token, ada.android_token) if f'title="{t}"' in row): row for row in rows}
    android, ios = by_token[ada.android_token], by_token[ada.ios_token]
    assert 'class="quarantined"' in android and ">Quarantined</span>" in android
    assert "UNREGISTERED (FCM 404)" in android and "<td>Yes</td>" in android  # disabled with the quarantine
    assert "Quarantined" not in ios and "<td>No</td>" in ios
    assert f"{ada.ios_token[:12]}…{ada.ios_token[-8:]}" in ios  # shortened, the whole token in the title
    assert "Shop" in ios and "iOS" in ios and "campaign-classic" in ios and "Apple iPhone15,2" in ios
    assert ada.ecid in ios


def test_the_profile_page_lists_audiences_and_recent_messages(viewer: ConsoleClient, ada: Person) -> None:
    page = viewer.get(f"/console/profiles/{ada.external_id}").get_data(as_text=True)
    memberships = section(page, "audiences")
    assert memberships.index("VIP customers") < memberships.index("Abandoned cart")  # current ones first
    assert links(memberships)["VIP customers"] == f"/console/audiences/{ada.audience_id}"
    assert "no longer a member" in memberships.split("Abandoned cart")[1]
    messages = section(page, "messages").split("<tbody>")[1].split("</tr>")[:-1]
    names = [re.search(r">([^<]+)</a>", row).group(1) for row in messages]  # type: ignore[union-attr]
    assert names == ["Weekend offer", "Cart reminder", "Spring sale"]  # newest first
    weekend, cart, spring = messages
    assert links(spring)["Spring sale"] == f"/console/deliveries/{ada.deliveries['Spring sale']}"
    assert ">Sent</span>" in spring and "<td>iOS</td>" in spring
    assert spring.count("<td>Yes</td>") == 2 and spring.endswith("<td>No</td>\n    ")  # received, opened; no click
    assert ">Failed</span>" in cart and "User unknown" in cart and "code 1" in cart and "UNREGISTERED" in cart
    assert ">Ignored</span>" in weekend and "In quarantine" in weekend and "code 9" in weekend


def test_a_profile_with_nothing_yet(app: Flask, viewer: ConsoleClient) -> None:
    make_profile(app, "bare")
    page = viewer.get("/console/profiles/bare").get_data(as_text=True)
    assert "<h1>bare</h1>" in page and ">Unknown</span>" in page
    for text in (
        "No device has registered for this profile.",
        "This profile is in no audience.",
        "No message has been sent to this profile.",
    ):
        assert text in page


#: Real ids (an e-mail, a CRM id) and every shape Campaign allows: slashes, spaces, letters beyond
#: ASCII, URL syntax, path segments a browser or the router would rewrite, the word ``view``.
ODD_IDS = ["demo@example.com", crm_id(42), "a/b", "zoë 1", "100% sure? #1", "back\\slash", "a+b;c=d&e"]
ODD_IDS += ["a//b", "../x", "./x", "x/", "x/..", "view", "view/1", " padded ", "%2e%2e"]


@pytest.mark.parametrize("external_id", ODD_IDS)
def test_every_external_id_opens_its_profile_page(app: Flask, viewer: ConsoleClient, external_id: str) -> None:
    make_profile(app, external_id, email="odd@example.com")
    results = viewer.get("/console/profiles/", query_string={"external_id": external_id}).get_data(as_text=True)
    found = profile_links(results)
    assert list(found) == [external_id]
    response = viewer.get(found[external_id])
    assert response.status_code == 200, found[external_id]
    assert f"<code>{html.escape(external_id)}</code>" in response.get_data(as_text=True)


def test_an_unknown_profile_is_a_404_page_and_an_impossible_id_a_400(viewer: ConsoleClient, ada: Person) -> None:
    for path in ("/console/profiles/CRM-999999", "/console/profiles/view?external_id=nobody"):
        response = viewer.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html"
        assert "Unknown profile" in response.get_data(as_text=True)
    for path in ("/console/profiles/" + "x" * 256, "/console/profiles/view", "/console/profiles/view?external_id="):
        response = viewer.get(path)
        assert response.status_code == 400 and response.mimetype == "text/html"


def test_a_profile_page_costs_a_few_queries(app: Flask, viewer: ConsoleClient, ada: Person) -> None:
    with counting_queries(app) as statements:
        assert viewer.get(f"/console/profiles/{ada.external_id}").status_code == 200
    assert len(statements) <= 8, statements  # the signed-in user, then six
    with counting_queries(app) as statements:
        assert viewer.get("/console/profiles/", query_string={"token": ada.ios_token}).status_code == 200
    assert len(statements) <= 5, statements


def test_profiles_need_a_signed_in_user(app: Flask, ada: Person) -> None:
    anonymous = app.test_client()
    for path in ("/console/profiles/", f"/console/profiles/{ada.external_id}"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/console/sign-in" in response.headers["Location"]
