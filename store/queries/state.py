"""``sync_state``: named values the sync jobs keep between runs, and race-safe claims on them.

Streams are named by their use: ``export:<stream>`` (a watermark and the guardrail's last run),
``dataset:<stream>`` / ``schema:<stream>`` (provisioned ids), ``batch:<stream>`` (a batch in
flight), ``schedule:<job>`` (the last cron firing taken). Several processes may claim the same
row at once: :func:`insert_if_absent` and :func:`compare_and_set` let exactly one of them win.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import SyncState


def get_value(session: Session, stream: str) -> str | None:
    state = session.get(SyncState, stream)
    return None if state is None else state.watermark


def set_value(session: Session, stream: str, value: str | None) -> None:
    """Set (or, with None, clear) the value of a row."""
    state = session.get(SyncState, stream)
    if state is None:
        if value is not None:
            session.add(SyncState(stream=stream, watermark=value))
    else:
        state.watermark = value


def insert_if_absent(session: Session, stream: str, **values: Any) -> bool:
    """Create the row with ``values``; False when it exists (or another process created it first)."""
    if session.get(SyncState, stream) is not None:
        return False
    try:
        with session.begin_nested():
            session.execute(insert(SyncState).values(stream=stream, **values))
    except IntegrityError:
        return False
    return True


def compare_and_set(session: Session, stream: str, column: str, expected: Any, **values: Any) -> bool:
    """Write ``values`` only if ``column`` still holds ``expected``; True when this call won."""
    current = getattr(SyncState, column)
    same = current.is_(None) if expected is None else current == expected
    result = session.execute(update(SyncState).where(SyncState.stream == stream, same).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def move(session: Session, stream: str, value: str | None) -> None:
    """Set the value of a row that exists (a watermark moving on), without reading it first."""
    session.execute(update(SyncState).where(SyncState.stream == stream).values(watermark=value))
