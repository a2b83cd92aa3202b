"""Message templates at creation: :func:`compile_message` resolves a message per platform and
parses every template once, refusing what the sandbox does not allow (:class:`TemplateProblem`
naming the field); the compiled forms it returns are what :mod:`domain.templates.rendering` renders
and the payload size checks measure. The rules are described in :mod:`domain.templates`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateError

from domain.messages import PLATFORMS, Message, Platform, ResolvedMessage, Unsendable, resolve
from domain.templates.sandbox import DATA_DYNAMIC_ALLOWANCE, METHODS, NAMES, SANDBOX, TEXT_LIMITS

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
