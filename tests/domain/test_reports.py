"""The delivery report's reads: rates, the sent and opened series in time buckets, failures grouped
by type and reason, and the broadLog searched and read in chunks. The SQL must give the same
answers on SQLite and PostgreSQL (run with PUSHGATE_TEST_DATABASE_URL to check the latter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from pydantic import ValidationError
from sqlalchemy.orm import Session

from domain import deliveries, reports
from domain.reports import LogSearch
from store.codes import BroadLogStatus, FailureReason, FailureType
from store.models import BroadLog, Delivery, Profile, TrackingLog
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.values import apns_token, fcm_token

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
SENT, FAILED, IGNORED, PENDING = (
    int(s) for s in (BroadLogStatus.SENT, BroadLogStatus.FAILED, BroadLogStatus.IGNORED, BroadLogStatus.PENDING)
)
HARD, SOFT = int(FailureType.HARD), int(FailureType.SOFT)
UNKNOWN, UNREACHABLE = int(FailureReason.USER_UNKNOWN), int(FailureReason.UNREACHABLE)


def new_delivery(session: Session, app_id: int, **fields: Any) -> Delivery:
    delivery = Delivery(
        app_id=app_id,
        name="Spring sale",
        message={"title": "Hi"},
        target={"all": True},
        platforms=["ios", "android"],
        status=fields.pop("status", "completed"),
        **fields,
    )
    session.add(delivery)
    session.flush()
    return delivery


def message(session: Session, delivery: Delivery, at: datetime, status: int = SENT, **fields: Any) -> BroadLog:
    row = BroadLog(
        delivery_id=delivery.id,
        channel=fields.pop("channel", 41),
        address=fields.pop("address", apns_token(f"m{at.timestamp()}{status}")),
        status=status,
        event_date=at,
        attempts=1,
        **fields,
    )
    session.add(row)
    session.flush()
    return row


def track(session: Session, row: BroadLog, interaction: str, at: datetime) -> None:
    session.add(
        TrackingLog(
            broadlog_id=row.id,
            delivery_id=row.delivery_id,
            interaction=interaction,
            source="campaign-classic",
            log_date=at,
        )
    )
    session.flush()


@pytest.fixture
def session(app: Flask) -> Any:
    with runtime_of(app).sessions() as s:
        yield s
        s.rollback()


@pytest.fixture
def app_id(app: Flask) -> int:
    return int(make_app(app)["id"])


def test_rates_divide_by_what_was_targeted_and_sent_and_say_none_before_anything_was() -> None:
    counts = {"targeted": 200, "sent": 160, "opened": 40, "clicked": 8, "pending": 50}
    assert reports.rates(counts) == {"delivery": 0.8, "open": 0.25, "click": 0.05}
    assert reports.rates({"targeted": 0, "sent": 0, "opened": 0, "clicked": 0}) == {
        "delivery": None,
        "open": None,
        "click": None,
    }
    assert reports.progress(counts) == 0.75
    assert reports.progress({"targeted": 0, "pending": 0}) == 0.0


@pytest.mark.parametrize(
    ("seconds", "width"),
    [
        (0, 1),
        (59, 1),
        (60, 2),
        (119, 2),
        (3599, 60),
        (3600, 120),
        (2 * 3600, 300),
        (3 * 86400, 7200),
        (59 * 86400, 86400),
    ],
)
def test_the_bucket_width_is_the_narrowest_that_keeps_the_chart_to_sixty_buckets(seconds: int, width: int) -> None:
    first = int(T0.timestamp())
    assert reports.bucket_width(first, first + seconds) == width
    assert (first + seconds) // width - first // width < reports.MAX_BUCKETS


def test_past_sixty_days_buckets_are_whole_days() -> None:
    first = int(T0.timestamp())
    width = reports.bucket_width(first, first + 200 * 86400)
    assert width % 86400 == 0 and width // 86400 == 4


def test_sent_and_opened_are_counted_per_bucket_with_the_empty_buckets_between(session: Session, app_id: int) -> None:
    delivery = new_delivery(session, app_id)
    other = new_delivery(session, app_id)
    sent = [message(session, delivery, T0 + timedelta(seconds=s, microseconds=900_000)) for s in (0, 0, 1, 5, 29)]
    message(session, delivery, T0 + timedelta(seconds=2), status=FAILED, failure_type=HARD, failure_reason=UNKNOWN)
    message(session, delivery, T0 + timedelta(seconds=3), status=PENDING)
    message(session, other, T0 + timedelta(seconds=4))  # another delivery's
    track(session, sent[0], "received", T0 + timedelta(seconds=1))
    track(session, sent[0], "opened", T0 + timedelta(seconds=10))
    track(session, sent[0], "clicked", T0 + timedelta(seconds=11))
    track(session, sent[1], "opened", T0 + timedelta(seconds=10, microseconds=500_000))
    track(session, sent[2], "opened", T0 + timedelta(seconds=40))

    series = reports.sent_and_opened(session, delivery.id)

    assert series.seconds == 1  # 40 s fit in 60 one-second buckets
    assert series.buckets[0].start == T0 and series.buckets[-1].start == T0 + timedelta(seconds=40)
    assert len(series.buckets) == 41  # every second from the first send to the last open
    by_second = {int((b.start - T0).total_seconds()): (b.sent, b.opened) for b in series.buckets if b.sent or b.opened}
    assert by_second == {0: (2, 0), 1: (1, 0), 5: (1, 0), 29: (1, 0), 10: (0, 2), 40: (0, 1)}
    counts = deliveries.counts(session, delivery.id)
    assert (series.sent, series.opened) == (counts["sent"], counts["opened"]) == (5, 3)


def test_wider_buckets_start_on_whole_minutes(session: Session, app_id: int) -> None:
    delivery = new_delivery(session, app_id)
    start = T0 + timedelta(seconds=17)
    rows = [message(session, delivery, start + timedelta(minutes=m)) for m in (0, 1, 1, 30, 119)]
    track(session, rows[1], "opened", start + timedelta(minutes=45))

    series = reports.sent_and_opened(session, delivery.id)

    assert series.seconds == 120
    assert all(b.start.second == 0 and b.start.minute % 2 == 0 for b in series.buckets)
    assert series.buckets[0].start == T0 and len(series.buckets) == 60
    assert [(b.sent, b.opened) for b in series.buckets if b.sent or b.opened] == [(3, 0), (1, 0), (0, 1), (1, 0)]


def test_a_delivery_without_sends_or_opens_has_an_empty_series(session: Session, app_id: int) -> None:
    delivery = new_delivery(session, app_id, status="scheduled")
    message(session, delivery, T0, status=PENDING)
    assert reports.sent_and_opened(session, delivery.id).buckets == []


def test_failures_are_grouped_by_status_type_and_reason_most_frequent_first(session: Session, app_id: int) -> None:
    delivery = new_delivery(session, app_id)
    for n in range(3):
        message(
            session,
            delivery,
            T0,
            FAILED,
            failure_type=HARD,
            failure_reason=UNKNOWN,
            error_message=f"410 Unregistered {n}",
        )
    message(session, delivery, T0, FAILED, failure_type=SOFT, failure_reason=UNREACHABLE, error_message="timeout")
    for _ in range(2):
        message(
            session,
            delivery,
            T0,
            IGNORED,
            failure_type=int(FailureType.IGNORED),
            failure_reason=int(FailureReason.IN_QUARANTINE),
        )
    message(session, delivery, T0)  # Sent: not a failure

    groups = reports.failure_groups(session, delivery.id)

    assert [(g.status_name, g.type_name, g.reason_name, g.count) for g in groups] == [
        ("failed", "hard", "user_unknown", 3),
        ("ignored", "ignored", "in_quarantine", 2),
        ("failed", "soft", "unreachable", 1),
    ]
    assert groups[0].example is not None and groups[0].example.startswith("410 Unregistered")
    assert (groups[0].failure_type, groups[0].failure_reason) == (1, 1) and groups[1].example is None


def test_the_broadlog_is_searched_by_status_token_prefix_profile_and_failure(session: Session, app_id: int) -> None:
    delivery = new_delivery(session, app_id)
    alice = Profile(external_id="alice")
    session.add(alice)
    session.flush()
    android_token = fcm_token("android")
    assert android_token[:12] != android_token[:12].swapcase()
    good = message(session, delivery, T0, address=apns_token("good"), profile_id=alice.id)
    gone = message(
        session, delivery, T0, FAILED, address=apns_token("gone", "e4100000"), failure_type=HARD, failure_reason=UNKNOWN
    )
    android = message(session, delivery, T0, address=android_token, channel=42)
    wildcard = message(session, delivery, T0, address="a%b_c" + "0" * 59)

    def ids(**filters: Any) -> list[int]:
        rows, _next = reports.search(session, delivery.id, LogSearch(**filters))
        return [r.id for r in rows]

    assert ids() == [wildcard.id, android.id, gone.id, good.id]  # newest first
    assert ids(order="id") == [good.id, gone.id, android.id, wildcard.id]
    assert ids(status="failed") == [gone.id]
    assert ids(token="e41") == [gone.id] and ids(token=gone.address) == [gone.id]
    assert ids(token=android_token[:12]) == [android.id]
    assert ids(token=android_token[:12].swapcase()) == []  # case-sensitive, as tokens are
    assert ids(token="a%") == [wildcard.id] and ids(token="%") == [] and ids(token="a_") == []  # no wildcards
    assert ids(profile="alice") == [good.id] and ids(profile="bob") == []
    assert ids(failure_type=HARD, failure_reason=UNKNOWN) == [gone.id] and ids(failure_type=SOFT) == []
    row = reports.search(session, delivery.id, LogSearch(profile="alice"))[0][0]
    assert (row.profile, row.status_name, row.channel) == ("alice", "sent", 41)
    assert reports.known_profile(session, "alice") and not reports.known_profile(session, "bob")


@pytest.mark.parametrize("status", [None, "sent"])
def test_search_pages_follow_on_without_gaps_or_repeats_in_both_orders(
    session: Session, app_id: int, status: str | None
) -> None:
    delivery, other = new_delivery(session, app_id), new_delivery(session, app_id)
    made = []
    for n in range(7):  # another delivery's rows between this one's, as concurrent analyses leave them
        made.append(message(session, delivery, T0 + timedelta(seconds=n)).id)
        message(session, other, T0)
    for order, expected in (("id", made), ("newest", made[::-1])):
        seen: list[int] = []
        after = None
        while True:
            page = LogSearch(order=order, after=after, status=status)
            rows, after = reports.search(session, delivery.id, page, limit=3)
            seen += [r.id for r in rows]
            if after is None:
                break
        assert seen == expected
    assert reports.search(session, other.id + 1000, LogSearch()) == ([], None)


def test_the_whole_broadlog_is_read_in_id_order_chunk_by_chunk(session: Session, app_id: int) -> None:
    delivery = new_delivery(session, app_id)
    other = new_delivery(session, app_id)
    made = []
    for _ in range(5):
        made.append(message(session, delivery, T0).id)
        message(session, other, T0)
    assert [r.id for r in reports.iter_broadlog(session, delivery.id, chunk=2)] == made
    assert [r.id for r in reports.iter_broadlog(session, delivery.id, chunk=5)] == made
    assert list(reports.iter_broadlog(session, other.id + 1000)) == []


def test_live_reports_the_same_counts_as_the_api(session: Session, app_id: int) -> None:
    delivery = new_delivery(session, app_id, status="running")
    message(session, delivery, T0)
    message(session, delivery, T0, status=PENDING)
    state = reports.live(session, delivery)
    assert state["counts"] == deliveries.counts(session, delivery.id)
    assert state["finished"] is False and state["progress"] == 0.5 and state["rates"]["delivery"] == 0.5


def test_the_target_is_summed_up_in_the_consoles_words(session: Session) -> None:
    assert reports.target_summary(session, {"all": True}) == "All subscribers"
    assert reports.target_summary(session, {"profiles": ["a", "b"]}) == "Profiles: a, b"
    assert reports.target_summary(session, {"profiles": list("abcde")}) == "Profiles: a, b, c and 2 more"
    assert reports.target_summary(session, {"subscriptions": [1, 2]}) == "Test devices: 2"
    assert reports.target_summary(session, {"audience": 999_999}) == "Audience #999999 (deleted)"


@pytest.mark.parametrize(
    "filters",
    [
        {"failure_type": 9},
        {"failure_reason": 13},
        {"status": "lost"},
        {"after": 0},
        {"after": 2**63},
        {"token": "a\x00"},
    ],
)
def test_search_filters_refuse_what_cannot_match(filters: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LogSearch(**filters)


def test_empty_filters_are_no_filters() -> None:
    search = LogSearch(status="", token=" ", profile="", failure_type="", failure_reason="", after="")
    assert search == LogSearch()
    assert LogSearch(token=" e41 ", failure_type="1").token == "e41"
