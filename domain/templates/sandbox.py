"""The Jinja sandbox message templates run in, and the rules it enforces: the names a template may
read and their fields, the filters and string methods it may call, the bounds on what operators may
build and on rendered text, and :class:`Record`, the read-only view templates see data through.

:mod:`domain.templates.compiling` checks templates against these rules at creation;
:mod:`domain.templates.rendering` renders them with :data:`SANDBOX`. The rules are described in
:mod:`domain.templates`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from jinja2 import filters as jinja_filters
from jinja2.exceptions import SecurityError
from jinja2.runtime import ChainableUndefined, Context
from jinja2.sandbox import SandboxedEnvironment

from domain.subscriptions import DEVICE_FIELDS

#: The names a template may use.
NAMES = ("profile", "subscription", "tables")
PROFILE_FIELDS = ("external_id", "email", "first_name", "last_name", "locale", "timezone")
#: The device id (Android ID) is left out: a push has no business carrying it.
_TEMPLATE_DEVICE_FIELDS = tuple(f for f in DEVICE_FIELDS if f != "device_imei")
SUBSCRIPTION_FIELDS = ("platform", "sdk", "push_provider", "user_key", *_TEMPLATE_DEVICE_FIELDS)

#: Rendered text limits, in characters; longer output is cut and ends with an ellipsis.
TEXT_LIMITS = {"title": 256, "subtitle": 256, "body": 2048}
#: Bytes (JSON-encoded, UTF-8) a data value may add to its template's literal text.
DATA_DYNAMIC_ALLOWANCE = 256
#: Largest string or sequence an operator inside a template may build.
OPERATOR_RESULT_MAX = 8192
ELLIPSIS = "…"

#: Filters a template may use (Jinja's own; ``replace`` and ``join`` are bounded versions).
FILTERS = (
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "first",
    "float",
    "int",
    "join",
    "last",
    "length",
    "lower",
    "max",
    "min",
    "replace",
    "reverse",
    "round",
    "string",
    "striptags",
    "sum",
    "title",
    "tojson",
    "trim",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "wordcount",
)
#: Methods a template may call, on strings only: ``{{ profile.first_name.upper() }}``.
METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "endswith",
        "isalnum",
        "isalpha",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "isupper",
        "lower",
        "lstrip",
        "rstrip",
        "startswith",
        "strip",
        "title",
        "upper",
    }
)


# -- the sandbox ----------------------------------------------------------------------------------


class _Missing(ChainableUndefined):
    """Missing data: prints empty, chains, is false, and stays missing through arithmetic."""

    __slots__ = ()

    def _same(self, *args: Any, **kwargs: Any) -> _Missing:
        return self

    def _false(self, other: Any) -> bool:
        return False

    # Jinja types the methods replaced here as never returning; these ones do, on purpose.
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same  # type: ignore[assignment]
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _same  # type: ignore[assignment]
    __pow__ = __rpow__ = __pos__ = __neg__ = __call__ = _same  # type: ignore[assignment]
    __lt__ = __le__ = __gt__ = __ge__ = _false  # type: ignore[assignment]

    def __int__(self) -> int:  # type: ignore[override]
        return 0

    def __float__(self) -> float:  # type: ignore[override]
        return 0.0


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _refuse(message: str) -> NoReturn:
    raise SecurityError(message)


def _safe_replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    if not old:
        return text
    grows = text.count(old) * max(0, len(new) - len(old))
    if len(text) + grows > OPERATOR_RESULT_MAX:
        _refuse(f"replace would build more than {OPERATOR_RESULT_MAX} characters")
    return text.replace(old, new, -1 if count is None else count)


def _safe_join(value: Any, separator: Any = "", attribute: Any = None) -> str:
    items = [str(item) for item in value] if attribute is None else None
    if items is None:
        _refuse("join(attribute=...) is not available in message templates")
    size = sum(map(len, items)) + len(str(separator)) * max(0, len(items) - 1)
    if size > OPERATOR_RESULT_MAX:
        _refuse(f"join would build more than {OPERATOR_RESULT_MAX} characters")
    return str(separator).join(items)


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if _sized(sequence) and isinstance(times, int) and _sized(sequence) * times > OPERATOR_RESULT_MAX:
                    _refuse(f"'*' would build more than {OPERATOR_RESULT_MAX} items")
        elif operator == "**":
            if isinstance(right, int) and isinstance(left, int) and (abs(right) > 64 or abs(left).bit_length() > 64):
                _refuse("'**' with large integers is not allowed")
        elif isinstance(left, str):  # "%": printf-style formatting can pad to any width
            _refuse("'%' string formatting is not allowed; use ~ to join text")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Fast path for the context's records: they have no public attributes, only keys.
        if type(obj) is Record and not attribute.startswith("_"):
            try:
                return obj[attribute]
            except LookupError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is Record and not (isinstance(argument, str) and argument.startswith("_")):
            try:
                return obj[argument]
            except (LookupError, TypeError):
                return self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)

    def is_safe_callable(self, obj: Any) -> bool:
        if isinstance(obj, _Missing):  # calling missing data gives missing data
            return True
        owner = getattr(obj, "__self__", None)
        return isinstance(owner, str) and getattr(obj, "__name__", "") in METHODS


def _environment() -> _Sandbox:
    env = _Sandbox(autoescape=False, undefined=_Missing, finalize=_finalize, keep_trailing_newline=False)
    env.globals.clear()  # no range, lipsum, dict, cycler, joiner, namespace
    env.filters = {name: jinja_filters.FILTERS[name] for name in FILTERS}
    env.filters["replace"] = _safe_replace
    env.filters["join"] = _safe_join
    env.tests = dict(env.tests)
    return env


SANDBOX = _environment()


class Record:
    """Read-only view of a mapping for templates: ``x.name`` and ``x["name"]`` read a key; missing
    and null values are undefined. It has no public attributes, so no key is shadowed by a
    method (``attributes.items`` is the attribute called "items")."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        value = self._data[key]
        if value is None:
            raise KeyError(key)
        return _wrap(value)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __str__(self) -> str:
        return ""


_SCALARS = frozenset({str, int, float, bool})


def _wrap(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return Record(value)
    if isinstance(value, list | tuple):
        return tuple(_wrap(item) for item in value)
    return value
