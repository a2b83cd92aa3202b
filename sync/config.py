"""The sync configuration file (``PUSHGATE_SYNC_CONFIG``): read and checked once, then shared.

One JSON file, every section optional::

    {
      "governance": {"labels": {...}, "policies": [...]},
      "audiences": {"names": {"<segmentId>": "<audience name>"}},
      "export": {"identityNamespace": "CRMID", "streams": ["broadlog", "trackinglog"]}
    }

- ``governance``: data usage labels and policies (:mod:`sync.governance`, whose model checks it),
  read by the ``segments`` job (policies) and by ``provision`` (dataset labels);
- ``audiences``: display names of Platform segments, by segment id (the ``segments`` job);
- any other top-level section is kept (``model_extra``) for the module that owns it: ``export``
  is checked by :func:`sync.export.config.export_config` (the ``logs`` and ``provision`` jobs).

:func:`load_sync_config` reads and checks a file: any unknown key inside ``governance`` or
``audiences`` is refused, as is any malformed content, and the first problem is reported as one
line naming ``PUSHGATE_SYNC_CONFIG``, the file and the place, e.g.
``PUSHGATE_SYNC_CONFIG /etc/pushgate/sync.json: governance.policies[0].deny: unknown operator "XOR"
(expected AND or OR)``.

:func:`sync_config` is what the jobs call when they start: the file of the settings, loaded and
checked once per process and kept while it is unchanged (same path, size and modification time);
a changed file is read again, and a broken one raises the same one line each time (it is not kept).
No configured file is an empty configuration.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from core.config import Settings
from core.errors import ConfigError
from sync.governance import Governance, OneLine

#: The setting that names the sync configuration file; every loading error starts with it.
ENV_VAR = "PUSHGATE_SYNC_CONFIG"


def _quote(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


class Audiences(BaseModel):
    """The ``audiences`` section: display names of Platform segments, by segment id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    names: dict[OneLine, OneLine] = Field(default_factory=dict)


class SyncConfig(BaseModel):
    """The sync configuration file. Unknown top-level sections are kept (``model_extra``) for their owners."""

    model_config = ConfigDict(extra="allow", frozen=True)

    governance: Governance = Field(default_factory=Governance)
    audiences: Audiences = Field(default_factory=Audiences)


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kinds, name in _JSON_TYPES:
        if isinstance(value, kinds):
            return name
    return type(value).__name__


_EXPECTED = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "an array",
    "string_type": "a string",
}


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{_quote(part)}]"
    return out


def _describe_error(error: ErrorDetails) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "recursion_depth_exceeded":
        return f"{_where(loc[:4])}: nested too deeply"
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required"
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_json_type(error.get('input'))}"
    elif kind == "literal_error":
        message = f"{error['msg']}, got {_quote(error.get('input'))}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    where = _where(loc)
    return f"{where}: {message}" if where else message


def load_sync_config(path: Path | None) -> SyncConfig:
    """Read and validate the sync configuration file; ``None`` (no file configured) is an empty config.

    Raises :class:`ConfigError` with one line naming ``PUSHGATE_SYNC_CONFIG``, the file and the first
    problem: missing or unreadable file, not UTF-8, not JSON (or a key twice in one object), not an
    object at the top, or malformed ``governance`` / ``audiences`` content.
    """
    if path is None:
        return SyncConfig()
    prefix = f"{ENV_VAR} {path}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{prefix}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{prefix}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{prefix}: cannot read the file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{prefix}: not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{prefix}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{prefix}: not valid JSON: key {_quote(exc.args[0])} twice in one object") from None
    except RecursionError:
        raise ConfigError(f"{prefix}: not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a JSON object at the top, got {_json_type(data)}")
    try:
        return SyncConfig.model_validate(data, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{prefix}: {_describe_error(errors[0])}{more}") from None


_loaded: dict[Path, tuple[tuple[int, int], SyncConfig]] = {}
_loaded_guard = threading.Lock()


def sync_config(settings: Settings) -> SyncConfig:
    """The sync configuration of ``settings``, loaded and checked once per process.

    Read again only when the file changed (another size or modification time). Raises
    :class:`ConfigError` as :func:`load_sync_config` does; a broken file is not kept.
    """
    path = settings.sync_config
    if path is None:
        return SyncConfig()
    try:
        found = os.stat(path)
    except OSError:
        return load_sync_config(path)  # raises the one line naming the problem
    stamp = (found.st_size, found.st_mtime_ns)
    with _loaded_guard:
        kept = _loaded.get(path)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        config = load_sync_config(path)
        _loaded[path] = (stamp, config)
        return config
