"""Keyset pages: every row once, in order, in both directions, the last page saying so."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from domain.paging import keyset, split_page
from store.models import Delivery
from tests.conftest import runtime_of
from tests.factories import make_app


def test_pages_walk_every_row_once_in_both_directions(app: Flask) -> None:
    app_id = make_app(app)["id"]
    with runtime_of(app).sessions.begin() as session:
        for n in range(7):
            session.add(Delivery(app_id=app_id, name=f"d{n}", message={}, target={"all": True}, platforms=["ios"]))

    with runtime_of(app).sessions() as session:
        for descending in (False, True):
            seen: list[int] = []
            after = None
            while True:
                stmt = keyset(select(Delivery), Delivery.id, after=after, limit=3, descending=descending)
                rows, after = split_page(session.scalars(stmt).all(), 3, lambda d: d.id)
                seen += [d.id for d in rows]
                if after is None:
                    break
            assert seen == sorted(seen, reverse=descending) and len(set(seen)) == 7
        empty = split_page([], 3, lambda d: d)
        assert empty == ([], None)
