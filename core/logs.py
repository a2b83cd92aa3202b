"""pushgate's log lines: for people (``text``) or for machines (``json``), and what they say about
the work in hand.

:func:`configure` gives the root logger one handler on stderr, the way ``logging.basicConfig``
does (and, like it, leaves a logging set-up made by someone else alone: a ``--log-config``, a test
runner). ``PUSHGATE_LOG_FORMAT`` picks its formatter:

- ``text``: ``2026-12-01 10:00:00,123 INFO pushgate.engine: delivery 7 completed``, one line a
  record (a traceback follows its line);
- ``json``: one JSON object a line, ``{"time": "2026-12-01T10:00:00.123Z", "level": "INFO",
  "logger": "pushgate.engine", "message": "...", "request_id": "...", "delivery_id": 7,
  "sync_run_id": 3, "exception": "Traceback ..."}``: ``time`` in UTC, the context keys only when
  known, ``exception`` (the whole traceback, one string) only when there is one.

Neither writes ANSI colour codes unless stderr is a terminal in ``text``: werkzeug colours its
development-server lines whatever the output, and a log file or collector would keep the codes.

The context is a :class:`contextvars.ContextVar`, so it follows the work: a request (set by
:mod:`gateway.logs` for the request's duration), a delivery's task in the worker, a sync run.
asyncio tasks and ``asyncio.to_thread`` copy it; a new thread starts without one.
:func:`log_context` sets keys for a block; :func:`bind` sets them for the rest of the current
context (an asyncio task of its own). Each record takes the context it was made in
(``record.pushgate_context``, by a log record factory), so a handler that formats later, in
another thread, still shows the right ids.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Literal, TextIO

Format = Literal["text", "json"]

#: The keys a record may carry from its context, in the order a JSON line shows them.
CONTEXT_KEYS = ("request_id", "delivery_id", "sync_run_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("pushgate_log_context", default={})  # noqa: B039 -- never mutated
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def context() -> dict[str, Any]:
    """The current context's keys (do not change the dict: set keys with :func:`bind`)."""
    return _CONTEXT.get()


def bind(**keys: Any) -> Token[dict[str, Any]]:
    """Add ``keys`` to the current context; the token undoes it (``unbind``)."""
    return _CONTEXT.set({**_CONTEXT.get(), **keys})


def unbind(token: Token[dict[str, Any]]) -> None:
    _CONTEXT.reset(token)


@contextmanager
def log_context(**keys: Any) -> Iterator[None]:
    """Records made inside the block carry ``keys`` (``delivery_id=7``, ``sync_run_id=3``)."""
    token = bind(**keys)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def _record_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        # One attribute, not one per key: logging refuses an ``extra`` key a record already has.
        record.pushgate_context = _CONTEXT.get()
        return record

    make.pushgate = True  # type: ignore[attr-defined]
    return make


def install_record_factory() -> None:
    """Make every record carry the context it was made in (once per process)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "pushgate", False):
        logging.setLogRecordFactory(_record_factory(current))


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The context keys of ``record``: those it was made with, ``extra=`` ones overriding them."""
    made: dict[str, Any] = getattr(record, "pushgate_context", None) or _CONTEXT.get()
    found = {}
    for key in CONTEXT_KEYS:
        value = getattr(record, key, None)
        if value is None:
            value = made.get(key)
        if value is not None:
            found[key] = value
    return found


class TextFormatter(logging.Formatter):
    """The people's format; colour codes are kept only for a terminal."""

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__(TEXT_FORMAT)
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if self.colour else strip_ansi(text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line (the module docstring lists the keys)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int((record.created - seconds) * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": strip_ansi(record.getMessage()),
        }
        line.update(record_context(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = strip_ansi(record.exc_text)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (recognised, so that configuring again replaces its
    formatter instead of adding a second handler)."""


def formatter(log_format: Format, stream: TextIO) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter(colour=_is_terminal(stream))


def configure(log_format: Format, stream: TextIO | None = None) -> bool:
    """Log to ``stream`` (stderr) in ``log_format`` through one handler on the root logger. Returns
    False when the root logger already has another handler, which is left as it is. Either way
    records carry their context from now on."""
    install_record_factory()
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, _Handler)]
    if root.handlers and not ours:
        return False
    if ours:
        handler = ours[0]
    else:
        handler = _Handler(stream or sys.stderr)
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format, handler.stream))
    return True


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
