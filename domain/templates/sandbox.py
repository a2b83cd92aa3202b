"""Message templates at creation: the Jinja sandbox, the names and constructs a template may use,
and :func:`compile_message`, which parses every template of a message once and refuses what is not
allowed (:class:`TemplateProblem`). The rules are described in :mod:`domain.templates`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2 import filters as jinja_filters
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import ChainableUndefined, Context
from jinja2.sandbox import SandboxedEnvironment

from domain.messages import PLATFORMS, Message, Platform, ResolvedMessage, Unsendable, resolve
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
_ALLOWED_STATEMENTS = (
    nodes.Output,
    nodes.If,
    nodes.Assign,
    nodes.AssignBlock,
    nodes.With,
    nodes.FilterBlock,
    nodes.Scope,
    nodes.ScopedEvalContextModifier,
    nodes.EvalContextModifier,
)
_JINJA_MARKERS = ("{{", "{%", "{#")
_SPECIAL_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs"})
_RESOLVED_FIELDS = tuple(f.name for f in dataclasses.fields(ResolvedMessage))
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


class TemplateProblem(Unsendable):
    """A template refused at creation: ``field`` (``title``, ``ios.body``, ``data.offer``) and why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"message.{field}: {problem}")
        self.field = field
        self.problem = problem


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


# -- compiling ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """One field's template: static text, or a parsed Jinja template with its literal size."""

    source: str
    static: str | None  # the text itself when the source has no Jinja syntax
    template: Template | None
    literal_bytes: int  # JSON-encoded bytes of every literal text piece (all branches)
    names: frozenset[str] = frozenset()  # the top-level names it reads (of NAMES)

    @property
    def is_static(self) -> bool:
        return self.static is not None


@dataclass(frozen=True, slots=True)
class CompiledPlatform:
    resolved: ResolvedMessage
    text: tuple[tuple[str, CompiledTemplate], ...]  # (field, template) for title/subtitle/body present
    data: tuple[tuple[str, CompiledTemplate], ...]  # (key, template)
    dynamic: bool = False  # any template needs Jinja

    def fields(self) -> dict[str, Any]:
        """The resolved message's fields as keyword arguments."""
        return {name: getattr(self.resolved, name) for name in _RESOLVED_FIELDS}


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    """A message with every template parsed, per platform."""

    platforms: Mapping[str, CompiledPlatform]

    def reads(self, name: str) -> bool:
        """Whether any template of any platform reads the top-level name ``name`` (of :data:`NAMES`)."""
        return any(
            name in template.names for part in self.platforms.values() for _, template in (*part.text, *part.data)
        )


def json_len(text: str) -> int:
    return len(_encode_str(text).encode()) - 2


def data_limit(template: CompiledTemplate) -> int:
    """Largest JSON-encoded size (bytes, without quotes) ``template`` may render to as a data value."""
    if template.static is not None:
        return json_len(template.static)
    return template.literal_bytes + DATA_DYNAMIC_ALLOWANCE


def _check_tree(tree: nodes.Template) -> None:
    """Refuse constructs outside the allowed subset (raises ``_Refused``)."""
    for statement in tree.find_all(nodes.Stmt):
        if not isinstance(statement, _ALLOWED_STATEMENTS):
            name = type(statement).__name__.lower()
            raise _Refused(f"{name} is not allowed in message templates", statement.lineno)
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key: Any = None
        if isinstance(access, nodes.Getattr):
            key = access.attr
        elif isinstance(access, nodes.Getitem) and isinstance(access.arg, nodes.Const):
            key = access.arg.value
        if isinstance(key, str) and key.startswith("_"):
            raise _Refused(f"names starting with '_' ({key}) are not accessible", access.lineno)
    # Jinja resolves "self" (and loop, caller...) itself, so they never count as undeclared.
    special = {name.name for name in tree.find_all(nodes.Name)} & _SPECIAL_NAMES
    unknown = sorted((meta.find_undeclared_variables(tree) | special) - set(NAMES))
    if unknown:
        raise _Refused(f"unknown name {unknown[0]!r}: templates can use {', '.join(NAMES)}", None)
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Getattr) and call.node.attr in METHODS):
            allowed = ", ".join(sorted(METHODS))
            raise _Refused(f"only these string methods may be called: {allowed}", call.lineno)
    for reference in tree.find_all(nodes.NSRef):
        raise _Refused("namespace assignments are not allowed", reference.lineno)


class _Refused(Exception):
    def __init__(self, message: str, lineno: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno


@lru_cache(maxsize=2048)
def _compile_source(source: str) -> CompiledTemplate:
    """Parse and check ``source`` once; raises ``_Refused``."""
    if not any(marker in source for marker in _JINJA_MARKERS):
        return CompiledTemplate(source, source, None, json_len(source))
    try:
        tree = SANDBOX.parse(source)
        _check_tree(tree)
        template = SANDBOX.from_string(tree)
    except TemplateSyntaxError as exc:
        raise _Refused(exc.message or "syntax error", exc.lineno) from None
    except TemplateError as exc:  # e.g. an unknown filter, found when the code is generated
        raise _Refused(str(exc), None) from None
    literal = sum(json_len(node.data) for node in tree.find_all(nodes.TemplateData))
    return CompiledTemplate(source, None, template, literal, frozenset(meta.find_undeclared_variables(tree)))


def _field_name(platform: Platform, message: Message, name: str) -> str:
    """Where ``name`` was written: ``ios.title`` when the override set it, else ``title``."""
    override = getattr(message, platform)
    if override is not None and getattr(override, name) is not None:
        return f"{platform}.{name}"
    return name


def _compile(where: str, source: str) -> CompiledTemplate:
    try:
        return _compile_source(source)
    except _Refused as exc:
        line = f" (line {exc.lineno})" if exc.lineno else ""
        raise TemplateProblem(where, f"{exc.message}{line}") from None


def compile_message(message: Message, platforms: Iterable[str] | None = None) -> CompiledMessage:
    """Resolve ``message`` for each platform (both by default) and parse every template once.

    Raises :class:`TemplateProblem` for a syntax error, a disallowed construct, an unknown name,
    or static text over the rendered limits.
    """
    compiled: dict[str, CompiledPlatform] = {}
    for platform in PLATFORMS:
        if platforms is not None and platform not in platforms:
            continue
        resolved = resolve(message, platform)
        text: list[tuple[str, CompiledTemplate]] = []
        for name, limit in TEXT_LIMITS.items():
            source = getattr(resolved, name)
            if source is None:
                continue
            template = _compile(_field_name(platform, message, name), source)
            if template.static is not None and len(template.static.strip()) > limit:
                raise TemplateProblem(_field_name(platform, message, name), f"must be at most {limit} characters")
            text.append((name, template))
        data: list[tuple[str, CompiledTemplate]] = []
        for key, source in resolved.data:
            data.append((key, _compile(f"{_field_name(platform, message, 'data')}.{key}", source)))
        dynamic = any(not template.is_static for _, template in (*text, *data))
        compiled[platform] = CompiledPlatform(resolved, tuple(text), tuple(data), dynamic)
    return CompiledMessage(compiled)
