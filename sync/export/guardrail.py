"""The export guardrail: a stream runs at most every ``PUSHGATE_SYNC_EXPORT_INTERVAL_HOURS``.

The interval is at least 4 hours (the integration pattern's rule). A run claims a stream by moving
``last_run_at`` of its ``sync_state`` row (``export:<stream>``) with a compare-and-set
(:func:`claim`), so two processes never both run it; a stream that ran less than the interval ago
is refused with the time it may run again, unless ``force`` (CLI ``--force``), which is logged.
:func:`claim_streams` claims every requested stream and reports each refused one as skipped; when
every one is refused, nothing is sent and the run ends ``refused`` (:class:`~sync.runs.RunRefused`):
``broadlog may run again at 2026-11-28T21:40:00Z (every 4 h; --force overrides)``. A claimed
stream counts as run, whether it then succeeds or fails (its watermark keeps anything not sent
for the next run). Nothing here talks to the Platform.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from store.models import SyncState
from store.queries import state
from store.types import iso_z
from sync.runs import FileOutcome, RunContext, RunRefused

log = logging.getLogger("pushgate.sync.export")


def hours(interval: timedelta) -> str:
    """``interval`` as the guardrail's messages show it: ``4 h``, ``0.5 h``."""
    count = interval.total_seconds() / 3600
    return f"{count:g} h"


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def claim(
    sessions: sessionmaker[Session], stream: str, now: datetime, interval: timedelta, *, force: bool
) -> tuple[bool, datetime | None]:
    """Claim ``stream`` for a run now: (True, its previous run time) when it may run, (False, the
    time it may run again) when it ran less than ``interval`` ago and ``force`` is not given."""
    key = f"export:{stream}"
    with sessions.begin() as session:
        if state.insert_if_absent(session, key, watermark=None, last_run_at=now):
            return True, None
        row = session.get(SyncState, key)
        assert row is not None
        last = row.last_run_at
        if last is not None and now < last + interval and not force:
            return False, last + interval
        if not state.compare_and_set(session, key, "last_run_at", last, last_run_at=now):
            return False, now + interval  # another process claimed it this instant
        return True, last


def claim_streams(
    context: RunContext, streams: list[str], now: datetime, interval: timedelta, *, force: bool
) -> list[tuple[str, bool]]:
    """Claim each of ``streams`` for a run now; returns those claimed, in order, each with whether
    ``force`` overrode the interval. Each refused stream is reported as a skipped file; when every
    one is refused, :class:`~sync.runs.RunRefused` says when each may run again."""
    allowed: list[tuple[str, datetime | None]] = []
    refused: dict[str, list[str]] = {}  # next run time -> streams
    for stream in streams:
        ok, when = claim(context.sessions, stream, now, interval, force=force)
        if ok:
            allowed.append((stream, when))
            if force and when is not None and now < when + interval:
                log.warning(
                    "sync logs: --force: %s last ran at %s, less than %s ago; exporting anyway",
                    stream,
                    iso_z(when),
                    hours(interval),
                )
            continue
        assert when is not None
        refused.setdefault(iso_z(when), []).append(stream)
        context.file(
            FileOutcome(
                name=stream,
                status="skipped",
                reason=f"may run again at {iso_z(when)} (every {hours(interval)}; --force overrides)",
                details={"refused": True, "next_run_at": iso_z(when)},
            )
        )
    if not allowed:
        times = "; ".join(f"{_names(names)} may run again at {when}" for when, names in refused.items())
        raise RunRefused(f"{times} (every {hours(interval)}; --force overrides)")
    return [(stream, force and previous is not None and now < previous + interval) for stream, previous in allowed]
