"""Kotlin and Swift snippets: ``templates/{sdk}.{kt|swift}.j2`` rendered with Jinja2.

Templates are our own files, rendered without HTML escaping and with ``StrictUndefined`` (a
misspelt name fails the tests rather than printing nothing). Values from the app reach the code
only through the ``kotlin`` and ``swift`` filters, which write them as string, boolean or integer
literals of that language (plain ASCII, everything else escaped), and the ``comment`` filter,
which keeps text on one comment line: whatever an app's name or keys contain, the snippet stays
valid code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"
EXTENSIONS = {"kotlin": "kt", "swift": "swift"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_COMMON = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _kotlin_char(code: int) -> str:
    # Kotlin's \uXXXX is one UTF-16 unit: a character beyond the BMP is written as its pair.
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def _swift_char(code: int) -> str:
    return f"\\u{{{code:X}}}"


def _string(text: str, simple: dict[str, str], other: Callable[[int], str]) -> str:
    out = []
    for char in text:
        if char in simple:
            out.append(simple[char])
        elif " " <= char < "\x7f":
            out.append(char)
        else:
            out.append(other(ord(char)))
    return '"' + "".join(out) + '"'


def _literal(value: Any, simple: dict[str, str], other: Callable[[int], str], language: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value, simple, other)
    raise TypeError(f"no {language} literal for {type(value).__name__}")


def kotlin_literal(value: Any) -> str:
    """A Kotlin literal for a string, bool or int (``$`` is escaped: it starts a template there)."""
    return _literal(value, {**_COMMON, "$": "\\$"}, _kotlin_char, "Kotlin")


def swift_literal(value: Any) -> str:
    """A Swift literal for a string, bool or int (``\\(`` cannot occur: backslashes are escaped)."""
    return _literal(value, _COMMON, _swift_char, "Swift")


def comment_text(value: Any) -> str:
    """Text safe on one ``//`` comment line."""
    return _CONTROL.sub(" ", str(value))


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - the output is Kotlin and Swift source, never HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(kotlin=kotlin_literal, swift=swift_literal, comment=comment_text)
    return env


def render_snippet(sdk: str, language: str, **context: Any) -> str:
    """The ``language`` snippet for ``sdk`` over ``context`` (app_name, base_url, configuration, ...)."""
    template = _environment().get_template(f"{sdk}.{EXTENSIONS[language]}.j2")
    return template.render(**context)
