"""Log lines: the JSON format's keys, the context they carry, no colour codes in files."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from core import logs


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    """Records of the logger ``pushgate.test``, kept to be formatted later (in another context)."""
    logs.install_record_factory()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("pushgate.test")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)


def as_json(record: logging.LogRecord) -> dict[str, object]:
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_json_line_has_time_level_logger_message_and_only_the_context_it_was_made_in(
    captured: list[logging.LogRecord],
) -> None:
    log = logging.getLogger("pushgate.test")
    log.info("outside")
    with logs.log_context(request_id="r-1"), logs.log_context(delivery_id=7):
        log.warning("delivery %s: %s", 7, "slow")
    log.info("given", extra={"sync_run_id": 3})
    outside, inside, given = (as_json(record) for record in captured)  # formatted here, outside the block
    assert set(outside) == {"time", "level", "logger", "message"}
    assert (outside["level"], outside["logger"], outside["message"]) == ("INFO", "pushgate.test", "outside")
    assert str(outside["time"]).endswith("Z") and str(outside["time"])[10] == "T"
    assert (inside["message"], inside["request_id"], inside["delivery_id"]) == ("delivery 7: slow", "r-1", 7)
    assert given["sync_run_id"] == 3 and "request_id" not in given
    assert logs.context() == {}


def test_an_exception_is_one_field_of_one_line(captured: list[logging.LogRecord]) -> None:
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("pushgate.test").exception("it failed")
    line = as_json(captured[0])
    assert line["message"] == "it failed"
    assert str(line["exception"]).startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in str(line["exception"])


def test_tasks_and_threads_keep_their_own_context(captured: list[logging.LogRecord]) -> None:
    log = logging.getLogger("pushgate.test")

    async def drive(delivery_id: int) -> None:
        logs.bind(delivery_id=delivery_id)  # as the worker does, for its task only
        await asyncio.to_thread(log.info, "sent a batch of %s", delivery_id)

    async def main() -> None:
        await asyncio.gather(drive(1), drive(2))
        log.info("after")

    asyncio.run(main())
    with logs.log_context(request_id="r-2"):
        thread = threading.Thread(target=log.info, args=("a new thread starts without the context",))
        thread.start()
        thread.join()
    lines = {str(line["message"]): line for line in map(as_json, captured)}
    assert lines["sent a batch of 1"]["delivery_id"] == 1 and lines["sent a batch of 2"]["delivery_id"] == 2
    assert "delivery_id" not in lines["after"]
    assert "request_id" not in lines["a new thread starts without the context"]


WERKZEUG_LINE = "\x1b[31m\x1b[1mWARNING: This is a development server.\x1b[0m"


def test_no_colour_codes_unless_text_goes_to_a_terminal(captured: list[logging.LogRecord]) -> None:
    logging.getLogger("pushgate.test").info(WERKZEUG_LINE)
    record = captured[0]
    assert as_json(record)["message"] == "WARNING: This is a development server."
    assert (
        logs.formatter("text", io.StringIO())
        .format(record)
        .endswith("INFO pushgate.test: WARNING: This is a development server.")
    )
    assert "\x1b[31m" in logs.TextFormatter(colour=True).format(record)


def test_configure_installs_one_handler_and_respects_another_set_up() -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        stream = io.StringIO()
        assert logs.configure("text", stream)
        assert logs.configure("json", io.StringIO())  # again: the same handler, the new format
        assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        root.handlers[0].handle(logging.makeLogRecord({"name": "pushgate.test", "msg": "hello", "levelname": "INFO"}))
        assert json.loads(stream.getvalue())["message"] == "hello"
        root.handlers.clear()
        other = logging.NullHandler()
        root.addHandler(other)
        assert not logs.configure("json")
        assert root.handlers == [other]
    finally:
        root.handlers[:] = saved
