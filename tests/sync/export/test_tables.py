"""The export streams' queries: every record field is filled from the column of its name."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import pytest

from store.models import BroadLog, Profile
from store.queries.export import READERS, AddressRow, BroadLogRow, ProfileRow, TrackingRow, select_list

ROW_TYPES = {"broadlog": BroadLogRow, "trackinglog": TrackingRow, "quarantine": AddressRow, "preferences": ProfileRow}


@pytest.mark.parametrize("stream", sorted(READERS))
def test_each_stream_selects_its_row_fields_by_name_in_their_order(stream: str) -> None:
    fields = [name for name in ROW_TYPES[stream]._fields if name != "ecids"]  # ecids: read after the query
    query = READERS[stream].query(None, datetime(2026, 12, 7).astimezone())
    assert [column.name for column in query.selected_columns] == fields


class Pair(NamedTuple):
    external_id: str
    id: int


def test_the_select_list_follows_the_fields_not_the_mapping() -> None:
    listed = select_list(Pair, {"id": Profile.id, "external_id": Profile.external_id})
    assert [column.name for column in listed] == ["external_id", "id"]
    assert [str(column.element) for column in listed] == ["profile.external_id", "profile.id"]


def test_a_field_without_a_column_or_a_column_without_a_field_is_refused() -> None:
    with pytest.raises(TypeError, match="do not match"):
        select_list(Pair, {"id": Profile.id})
    with pytest.raises(TypeError, match="do not match"):
        select_list(Pair, {"id": Profile.id, "external_id": Profile.external_id, "status": BroadLog.status})
