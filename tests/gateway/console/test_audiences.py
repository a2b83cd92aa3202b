"""The console's audiences pages through Flask's test client: the list (size, source segment, last
import, filter, paging), an audience's page (import history, members by status, links to their
profiles), bad ids and parameters, and the cost of a page in queries."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import event

from domain import audiences
from store.models import AudienceMember, SyncFile, SyncRun
from tests.conftest import runtime_of
from tests.factories import make_profile
from tests.gateway.console.conftest import ConsoleClient
from tests.values import crm_id

DESTINATION = "Azure_Blob_Campaign"
SEG_VIP = "7c1e4b2a-1111-4a6e-9d0b-3f5e8a9c0d1e"
SEG_CART = "a2b3c4d5-2222-4e6f-8a9b-0c1d2e3f4a5b"
FIRST_IMPORT = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def export_name(segment_id: str, when: datetime) -> str:
    """A Platform export file's name: destination, segment id, time of the export."""
    return f"{DESTINATION}_{segment_id}_{when:%Y%m%d_%H%M%S}.csv"


def seed_audience(
    application: Flask,
    segment_id: str,
    name: str,
    members: Sequence[tuple[int, str]] = (),
    files: Sequence[tuple[int, int, int]] = ((0, 0, 0),),
    first_import: datetime = FIRST_IMPORT,
) -> int:
    """An audience as the segment sync leaves it: made by ``for_segment`` on each import, one
    applied ledger file per import (``files``: entered, existing, exited; one day apart, of a
    succeeded sync run) recorded with ``record_imports``, and ``members``: (profile id, status).
    Without files the audience is as a segment's first, still empty export leaves it."""
    with runtime_of(application).sessions.begin() as session:
        audience_id = audiences.for_segment(session, segment_id, name, rename=True, now=first_import)
        for day, (entered, existing, exited) in enumerate(files):
            when = first_import + timedelta(days=day)
            audience_id = audiences.for_segment(session, segment_id, name, rename=True, now=when)
            run = SyncRun(job="segments", trigger="schedule", status="succeeded", started_at=when, ended_at=when)
            session.add(run)
            session.flush()
            file = SyncFile(
                job="segments",
                source="blob",
                name=export_name(segment_id, when),
                etag=f"0x8DD{day:03d}{abs(hash(segment_id)) % 10**9:09d}",
                run_id=run.id,
                status="applied",
                rows=entered + existing + exited,
                applied=entered + existing + exited,
                taken_at=when,
            )
            session.add(file)
            session.flush()
            audiences.record_imports(
                session,
                [
                    {
                        "audience_id": audience_id,
                        "file_id": file.id,
                        "entered": entered,
                        "existing": existing,
                        "exited": exited,
                    }
                ],
            )
        for profile_id, status in members:
            session.add(
                AudienceMember(
                    audience_id=audience_id,
                    profile_id=profile_id,
                    status=status,
                    entered_at=first_import,
                    updated_at=first_import,
                )
            )
        return audience_id


def links(page: str) -> dict[str, str]:
    """The page's links: text -> href (both unescaped)."""
    return {
        html.unescape(text): html.unescape(href)
        for href, text in re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', page)
    }


@contextmanager
def counting_queries(application: Flask) -> Iterator[list[str]]:
    """The SQL statements the app runs inside the block."""
    engine = runtime_of(application).engine
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def viewer(console_as: Callable[[str], ConsoleClient]) -> ConsoleClient:
    return console_as("viewer")


@pytest.fixture
def vip(app: Flask) -> int:
    """VIP customers: 3 current members and 1 who left, after two imports."""
    ids = [
        make_profile(app, crm_id(n), email=f"member{n}@example.com", first_name=f"Member{n}", last_name="Smith")
        for n in range(1, 5)
    ]
    members = list(zip(ids, ["realized", "existing", "realized", "exited"], strict=True))
    return seed_audience(app, SEG_VIP, "VIP customers", members, files=[(3, 0, 0), (1, 2, 1)])


def test_the_list_shows_size_source_segment_and_last_import(app: Flask, viewer: ConsoleClient, vip: int) -> None:
    seed_audience(app, SEG_CART, "Abandoned cart", files=[])
    response = viewer.get("/console/audiences/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Audiences</h1>" in page
    row = page.split("VIP customers</a>")[1].split("</tr>")[0]
    assert '<td class="num">3</td>' in row  # the member who exited is not counted
    assert SEG_VIP in row
    assert export_name(SEG_VIP, FIRST_IMPORT + timedelta(days=1)) in row  # the newer of the two files
    assert "1 entered, 2 existing, 1 exited" in row
    assert "2026-12-02 06:00:00 UTC" in row  # last import time
    empty = page.split("Abandoned cart</a>")[1].split("</tr>")[0]
    assert '<td class="num">0</td>' in empty and SEG_CART in empty
    assert links(page)["VIP customers"] == f"/console/audiences/{vip}"


def test_the_list_filters_by_segment_id(app: Flask, viewer: ConsoleClient, vip: int) -> None:
    seed_audience(app, SEG_CART, "Abandoned cart")
    only = viewer.get(f"/console/audiences/?segment_id={SEG_CART}").get_data(as_text=True)
    assert "Abandoned cart" in only and "VIP customers" not in only
    assert f'value="{SEG_CART}"' in only  # the filter keeps its value
    none = viewer.get("/console/audiences/?segment_id=0f0f0f0f-4444-4444-8444-444444444444")
    assert none.status_code == 200 and "No audience comes from segment" in none.get_data(as_text=True)


@pytest.mark.parametrize("segment_id", ["x" * 256, "seg\x00ment", "seg\u200bment\u2028"])
def test_a_segment_id_the_store_cannot_hold_is_an_inline_error(viewer: ConsoleClient, segment_id: str) -> None:
    response = viewer.get("/console/audiences/", query_string={"segment_id": segment_id})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'class="error" role="alert">A segment id is at most 255 printable characters.' in page


def test_the_list_pages_by_fifty(app: Flask, viewer: ConsoleClient) -> None:
    with runtime_of(app).sessions.begin() as session:
        for n in range(55):
            audiences.for_segment(
                session, f"5e6f7a8b-{n:04d}-4c2d-9e0f-1a2b3c4d5e6f", f"Segment {n:02d}", rename=True, now=FIRST_IMPORT
            )
    first = viewer.get("/console/audiences/").get_data(as_text=True)
    assert first.count("<tr>") == 51  # header + 50
    assert "Segment 49" in first and "Segment 50" not in first
    following = links(first)["Next page"]
    second = viewer.get(following).get_data(as_text=True)
    assert second.count("<tr>") == 6 and "Segment 50" in second and "Segment 54" in second
    assert "Next page" not in second and links(second)["First page"] == "/console/audiences/"


def test_an_audience_page_shows_its_history_and_members_linking_to_their_profiles(
    app: Flask, viewer: ConsoleClient, vip: int
) -> None:
    response = viewer.get(f"/console/audiences/{vip}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>VIP customers</h1>" in page
    assert "<dd>3 members</dd>" in page and SEG_VIP in page
    assert "2 realized, 1 existing, 1 exited" in page
    history = page.split('id="imports"')[1].split("</table>")[0]
    assert history.index(export_name(SEG_VIP, FIRST_IMPORT + timedelta(days=1))) < history.index(
        export_name(SEG_VIP, FIRST_IMPORT)
    )  # newest first
    members = links(page.split('id="members"')[1])
    assert [name for name in members if name.startswith("CRM-")] == [crm_id(1), crm_id(2), crm_id(3)]
    assert members[crm_id(2)] == f"/console/profiles/{crm_id(2)}"
    assert viewer.get(members[crm_id(2)]).status_code == 200
    assert "member2@example.com" in page and "Member2 Smith" in page


def test_members_filter_by_status_and_page(app: Flask, viewer: ConsoleClient) -> None:
    ids = [make_profile(app, crm_id(100 + n)) for n in range(60)]
    audience = seed_audience(
        app, SEG_CART, "Abandoned cart", [(pid, "exited" if n % 10 == 9 else "existing") for n, pid in enumerate(ids)]
    )
    first = viewer.get(f"/console/audiences/{audience}").get_data(as_text=True)
    shown = [name for name in links(first) if name.startswith("CRM-")]
    assert len(shown) == 50 and crm_id(109) not in shown  # exited: not a current member
    second = viewer.get(links(first)["Next page"]).get_data(as_text=True)
    assert len([name for name in links(second) if name.startswith("CRM-")]) == 4
    exited = viewer.get(f"/console/audiences/{audience}?status=exited").get_data(as_text=True)
    assert [name for name in links(exited) if name.startswith("CRM-")] == [crm_id(100 + n) for n in range(9, 60, 10)]
    assert '<option value="exited" selected>' in exited
    assert viewer.get(f"/console/audiences/{audience}?status=gone").status_code == 400


@pytest.mark.parametrize("audience_id", ["999", "0", "-1", "abc", "1e3", "99999999999999999999999", "٣"])
def test_an_unknown_audience_is_a_404_page(viewer: ConsoleClient, vip: int, audience_id: str) -> None:
    response = viewer.get(f"/console/audiences/{audience_id}")
    assert response.status_code == 404
    assert response.mimetype == "text/html" and "no audience with id" in response.get_data(as_text=True)


@pytest.mark.parametrize("after", ["x", "-1", str(2**31), "9" * 40])
def test_a_bad_page_position_is_a_400_page(viewer: ConsoleClient, vip: int, after: str) -> None:
    for path in ("/console/audiences/", f"/console/audiences/{vip}"):
        response = viewer.get(path, query_string={"after": after})
        assert response.status_code == 400 and response.mimetype == "text/html"


def test_a_page_of_fifty_rows_costs_a_few_queries(app: Flask, viewer: ConsoleClient) -> None:
    ids = [make_profile(app, crm_id(200 + n)) for n in range(50)]
    with runtime_of(app).sessions.begin() as session:
        for n in range(49):
            audiences.for_segment(
                session, f"9a8b7c6d-{n:04d}-4e5f-8a9b-0c1d2e3f4a5b", f"Segment {n}", rename=True, now=FIRST_IMPORT
            )
    big = seed_audience(
        app, SEG_VIP, "VIP customers", [(pid, "realized") for pid in ids], files=[(50, 0, 0), (0, 50, 0)]
    )
    with counting_queries(app) as listed:
        assert viewer.get("/console/audiences/").status_code == 200
    with counting_queries(app) as shown:
        assert viewer.get(f"/console/audiences/{big}").status_code == 200
    # the signed-in user, then the page: 3 for the list, 6 for the audience
    assert len(listed) <= 5, listed
    assert len(shown) <= 8, shown


def test_audiences_need_a_signed_in_user(app: Flask, vip: int) -> None:
    anonymous = app.test_client()
    for path in ("/console/audiences/", f"/console/audiences/{vip}"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/console/sign-in" in response.headers["Location"]
