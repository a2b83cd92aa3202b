"""The delivery report's chart of Sent and Opened messages over time, laid out for an inline SVG
the template draws (no script, no chart library): bars per time bucket, a value axis with round
steps, a few time labels, and the words that describe it to a screen reader. The numbers come
from :func:`domain.reports.sent_and_opened`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from domain.reports import Series

WIDTH, HEIGHT = 960, 260
MAX_BAR_WIDTH = 28
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36
#: Bar colours: 4.5:1 or more against the white card, and unlike each other for colour-blind eyes.
COLOURS = {"sent": "#0b57d0", "opened": "#b3261e"}
MAX_TIME_LABELS = 6


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    colour: str
    title: str  # shown on hover


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Row:
    """One bucket, for the table that repeats the chart's numbers."""

    label: str
    sent: int
    opened: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    right: int  # x of the plot's right edge
    bottom: int  # y of the plot's base line
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    per: str  # "per minute"
    title: str
    description: str
    rows: list[Row]
    colours: dict[str, str]


def per(seconds: int) -> str:
    """A bucket width in words: ``per second``, ``per 5 minutes``, ``per 2 days``."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = seconds // size
            return f"per {unit}" if count == 1 else f"per {count} {unit}s"
    return f"per {seconds} seconds"  # pragma: no cover (every width is a whole number of seconds)


def _steps() -> Iterator[int]:
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            yield mantissa * 10**exponent
        exponent += 1


def value_axis(highest: int, most_ticks: int = 5) -> tuple[int, int]:
    """``(top, step)``: a round step (1, 2, 5 times a power of ten) giving at most ``most_ticks``
    steps up to a top at or above ``highest``."""
    for step in _steps():
        if math.ceil(max(highest, 1) / step) <= most_ticks:
            return max(1, math.ceil(highest / step)) * step, step
    raise AssertionError("unreachable")  # pragma: no cover


def _time_format(seconds: int, first: datetime, last: datetime) -> str:
    if seconds >= 86400:
        return "%Y-%m-%d"
    clock = "%H:%M:%S" if seconds < 60 else "%H:%M"
    return clock if first.date() == last.date() else f"%m-%d {clock}"


def layout(series: Series) -> Chart | None:
    """The chart of ``series``; None when nothing was sent or opened yet."""
    buckets = series.buckets
    if not buckets:
        return None
    top_value, step = value_axis(max(max(b.sent, b.opened) for b in buckets))
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    plot_height = bottom - TOP
    slot = (right - LEFT) / len(buckets)
    bar_width = min(max(slot * 0.4, 0.5), MAX_BAR_WIDTH)
    first, last = buckets[0].start, buckets[-1].start
    fmt = _time_format(series.seconds, first, last)

    def y(value: int) -> float:
        return bottom - plot_height * value / top_value

    bars: list[Bar] = []
    for index, bucket in enumerate(buckets):
        left = LEFT + index * slot + (slot - 2 * bar_width) / 2  # the pair in the middle of its slot
        when = bucket.start.strftime(fmt)
        for offset, name, value in ((0.0, "sent", bucket.sent), (bar_width, "opened", bucket.opened)):
            if value:
                bars.append(
                    Bar(
                        left + offset,
                        y(value),
                        bar_width,
                        bottom - y(value),
                        name,
                        COLOURS[name],
                        f"{when}: {value:,} {name}",
                    )
                )
    every = math.ceil(len(buckets) / MAX_TIME_LABELS)
    x_ticks = [
        Tick(LEFT + index * slot + slot / 2, buckets[index].start.strftime(fmt))
        for index in range(0, len(buckets), every)
    ]
    y_ticks = [Tick(y(value), f"{value:,}") for value in range(0, top_value + 1, step)]
    words = per(series.seconds)
    title = f"Sent and opened messages {words}"
    description = (
        f"Bars of messages sent and opened {words}, from {first:%Y-%m-%d %H:%M:%S} to "
        f"{last:%Y-%m-%d %H:%M:%S} UTC: {series.sent:,} sent and {series.opened:,} opened in all, "
        f"at most {max(b.sent for b in buckets):,} sent and {max(b.opened for b in buckets):,} opened in one bucket."
    )
    rows = [Row(f"{b.start:%Y-%m-%d %H:%M:%S}", b.sent, b.opened) for b in buckets]
    return Chart(
        WIDTH, HEIGHT, LEFT, TOP, right, bottom, bars, x_ticks, y_ticks, words, title, description, rows, COLOURS
    )
