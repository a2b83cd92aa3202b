"""Governance: data usage labels and policies, checked before a segment file is applied.

pushgate enforces Adobe Experience Platform data governance on its own side of the fence. The
labels and policies are the ``governance`` section of the sync configuration file
(:mod:`sync.config`, ``PUSHGATE_SYNC_CONFIG``), written in the Policy Service API's own shape so
that they can be copied from Platform::

    {
      "governance": {
        "labels": {
          "fields":   {"personalEmail.address": ["I1"], "_acme.partnerScores": ["C4"]},
          "datasets": {"Acme Loyalty Members": ["C2"]}
        },
        "policies": [
          {
            "name": "No push targeting of C4 data",
            "status": "ENABLED",
            "marketingActionRefs": [
              "https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/custom/pushTargeting"
            ],
            "description": "optional",
            "deny": {"operator": "OR", "operands": [{"label": "C4"}, {"operator": "AND", "operands": [...]}]}
          }
        ]
      }
    }

This module is the policy engine: the section's model (:class:`Governance`, checked when the file
is loaded) and its evaluation (:func:`labels_for`, :func:`evaluate`, :func:`check_file`,
:func:`describe`), which read a loaded configuration and never the file.

The contract, following Adobe's Policy Service documentation (``/policies`` endpoint guide, the
``PolicyExpression`` and ``PolicyBody`` schemas of the Policy Service API, the policy evaluation
guide and the data usage labels glossary on experienceleague.adobe.com):

Labels
    Core labels are exactly ``C1`` … ``C12`` (contract), ``I1``, ``I2`` (identity), ``S1``, ``S2``
    (sensitive). Any other name is a custom label (``L1``, ``Third-Party``, …): 1 to 64 letters,
    digits, ``_``, ``-``, ``.`` or ``:``, starting with a letter or digit. Label names are
    case-sensitive, as in Platform; a name that differs from a core label only by case (``c4``) is
    refused as the typo it is.
Where labels come from
    ``labels.fields`` maps a column path, as the column is named in the files Platform exports
    (XDM paths flattened with dots, ``person.name.firstName``), to its labels. A label on an object
    applies to everything inside it, so a column gets the labels of its own path, of every parent
    path (``person.name`` and ``person`` for ``person.name.firstName``) and, when the column holds
    a whole object, of every path inside it (``person`` gets the labels of ``person.name``).
    ``labels.datasets`` maps a dataset name to labels that apply to every column of the files
    exported from that dataset. Paths and names match exactly (case-sensitive).
Policies
    ``deny`` is a policy expression: either ``{"label": "C4"}`` or ``{"operator": "AND" | "OR",
    "operands": [expression, ...]}`` (at least one operand; never both forms at once), nested at
    most :data:`MAX_DENY_DEPTH` operators deep. ``OR`` is true when any operand is, ``AND`` when all
    are; a label is true when the file carries it. A policy is violated when its ``deny`` is true
    for the file's labels.
Which policies count
    Only ``ENABLED`` ones (``DRAFT`` and ``DISABLED`` are accepted and ignored, like the Policy
    Service's evaluation without ``includeDraft``), and only those naming pushgate's marketing
    action, :data:`MARKETING_ACTION`: one of their ``marketingActionRefs`` is ``pushTargeting`` or
    ends with ``/pushTargeting`` (``…/marketingActions/custom/pushTargeting``, ``…/core/…`` or the
    relative ``../marketingActions/custom/pushTargeting`` accepted by Platform).
The verdict
    :func:`evaluate` returns the violated policies, in file order; an empty list means allowed, as
    an empty ``violatedPolicies`` does in Platform. The segment importer blocks a file when
    :func:`check_file` returns anything and records :func:`describe`'s one-line reason.

Policies copied from a Policy Service response may keep their service properties (``id``,
``imsOrg``, ``created``, ``_links``, …); they are ignored. Any other unknown key inside
``governance`` is refused, as is any malformed content, when the file is loaded
(:func:`sync.config.load_sync_config`, one line naming the place).

Sources: https://experienceleague.adobe.com/docs/experience-platform/data-governance/api/policies.html
(policy shape, ``PolicyExpression``), .../data-governance/api/evaluation.html (only ENABLED policies
by default, empty ``violatedPolicies`` when allowed, case-sensitive labels),
.../data-governance/labels/reference.html (core labels) and the Policy Service OpenAPI description
(``status`` is one of DRAFT, ENABLED, DISABLED; ``operator`` one of AND, OR).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

#: pushgate's marketing action: sending push notifications to the members of an audience.
MARKETING_ACTION = "pushTargeting"

#: Adobe's core data usage labels, in the glossary's order.
CORE_LABELS: tuple[str, ...] = (*(f"C{n}" for n in range(1, 13)), "I1", "I2", "S1", "S2")

#: Policy statuses of the Policy Service; only ENABLED policies are enforced.
STATUSES = ("ENABLED", "DRAFT", "DISABLED")

#: How many operators a ``deny`` expression may nest.
MAX_DENY_DEPTH = 10

_CORE = frozenset(CORE_LABELS)
_CORE_BY_UPPER = {label.upper(): label for label in CORE_LABELS}
_CUSTOM_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Read-only properties the Policy Service adds to a policy; tolerated so policies can be pasted.
SERVICE_PROPERTIES = frozenset(
    {
        "id",
        "imsOrg",
        "sandboxName",
        "created",
        "createdClient",
        "createdUser",
        "updated",
        "updatedClient",
        "updatedUser",
        "_links",
        "_etag",
        "etag",
    }
)


def _quote(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _check_label(value: str) -> str:
    if value in _CORE:
        return value
    core = _CORE_BY_UPPER.get(value.upper())
    if core is not None:
        raise ValueError(f'unknown label "{value}": labels are case-sensitive, the core label is "{core}"')
    if not _CUSTOM_LABEL.fullmatch(value):
        raise ValueError(
            f"invalid label {_quote(value)}: a label is 1 to 64 letters, digits, _, -, . or :, "
            "starting with a letter or digit"
        )
    return value


def _check_field_path(value: str) -> str:
    shown = _quote(value)
    if value.startswith("/"):
        raise ValueError(
            f"field {shown}: name columns as the files do, with dots (person.name.firstName), not as JSON pointers"
        )
    if value != value.strip():
        raise ValueError(f"field {shown}: spaces around the name")
    if any(part == "" for part in value.split(".")):
        raise ValueError(f"field {shown}: empty path segment")
    return value


def _check_one_line(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if _CONTROL.search(value):
        raise ValueError("must be one line of text")
    return value


#: A data usage label name (core or custom).
Label = Annotated[str, AfterValidator(_check_label)]
_FieldPath = Annotated[str, AfterValidator(_check_field_path)]
#: One line of text, not empty (names in the configuration file).
OneLine = Annotated[str, AfterValidator(_check_one_line)]


def label_sort_key(label: str) -> tuple[int, int, str]:
    """Core labels in the glossary's order (C1 … C12, I1, I2, S1, S2), then custom labels by name."""
    if label in _CORE:
        return (0, CORE_LABELS.index(label), "")
    return (1, 0, label)


def sort_labels(labels: Iterable[str]) -> list[str]:
    """``labels`` without duplicates, in :func:`label_sort_key` order."""
    return sorted(set(labels), key=label_sort_key)


class DenyExpression(BaseModel):
    """A Policy Service ``PolicyExpression``: ``{"label": L}`` or ``{"operator": O, "operands": [...]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Label | None = None
    operator: str | None = None
    operands: list[DenyExpression] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> DenyExpression:
        if self.label is not None:
            if self.operator is not None or self.operands is not None:
                raise ValueError('an expression is either a "label" or an "operator" with "operands", not both')
            return self
        if self.operator is None:
            if self.operands is None:
                raise ValueError('empty expression: give a "label", or an "operator" with "operands"')
            raise ValueError('"operands" without an "operator" (AND or OR)')
        if self.operator not in ("AND", "OR"):
            raise ValueError(f"unknown operator {_quote(self.operator)} (expected AND or OR)")
        if not self.operands:
            raise ValueError(f"operator {self.operator} needs at least one operand")
        return self

    def matches(self, labels: AbstractSet[str]) -> bool:
        """Whether the expression is true for data carrying ``labels``."""
        if self.label is not None:
            return self.label in labels
        results = (operand.matches(labels) for operand in self.operands or ())
        return all(results) if self.operator == "AND" else any(results)

    def depth(self) -> int:
        """How many operators are nested: 0 for a bare label."""
        if self.label is not None:
            return 0
        return 1 + max((operand.depth() for operand in self.operands or ()), default=0)

    def labels(self) -> set[str]:
        """Every label the expression mentions."""
        if self.label is not None:
            return {self.label}
        return set().union(*(operand.labels() for operand in self.operands or ()))

    def render(self) -> str:
        """A readable rendering, e.g. ``C4 OR (C2 AND S1)``; nested operators are parenthesised."""
        if self.label is not None:
            return self.label
        parts = []
        for operand in self.operands or ():
            text = operand.render()
            if operand.label is None and len(operand.operands or ()) > 1:
                text = f"({text})"
            parts.append(text)
        return f" {self.operator} ".join(parts)


def action_name(ref: str) -> str:
    """The marketing action a ``marketingActionRefs`` entry names: its last path segment."""
    return ref.rstrip("/").rsplit("/", 1)[-1]


class Policy(BaseModel):
    """A data usage policy in the Policy Service's shape (``PolicyBody``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: OneLine
    status: Literal["ENABLED", "DRAFT", "DISABLED"]
    marketingActionRefs: list[str]  # the Policy Service's own key
    description: str | None = None
    deny: DenyExpression

    @model_validator(mode="before")
    @classmethod
    def _drop_service_properties(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in SERVICE_PROPERTIES}
        return data

    @field_validator("status", mode="before")
    @classmethod
    def _known_status(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in STATUSES:
            raise ValueError(f"unknown status {_quote(value)} (expected ENABLED, DRAFT or DISABLED)")
        return value

    @field_validator("marketingActionRefs")
    @classmethod
    def _some_actions(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a policy needs at least one marketing action")
        for ref in value:
            if not action_name(ref):
                raise ValueError(f"{_quote(ref)} names no marketing action")
        return value

    @field_validator("deny")
    @classmethod
    def _bounded(cls, value: DenyExpression) -> DenyExpression:
        if value.depth() > MAX_DENY_DEPTH:
            raise ValueError(f"operators nested more than {MAX_DENY_DEPTH} levels deep")
        return value

    def applies_to(self, action: str = MARKETING_ACTION) -> bool:
        """Whether the policy is enforced for ``action``: ENABLED and naming it in ``marketingActionRefs``."""
        return self.status == "ENABLED" and any(action_name(ref) == action for ref in self.marketingActionRefs)


class GovernanceLabels(BaseModel):
    """Labels on columns (``fields``: column path -> labels) and on datasets (name -> labels)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[_FieldPath, list[Label]] = Field(default_factory=dict)
    datasets: dict[OneLine, list[Label]] = Field(default_factory=dict)


class Governance(BaseModel):
    """The ``governance`` section: labels and policies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: GovernanceLabels = Field(default_factory=GovernanceLabels)
    policies: list[Policy] = Field(default_factory=list)

    @field_validator("policies")
    @classmethod
    def _unique_names(cls, value: list[Policy]) -> list[Policy]:
        seen: set[str] = set()
        for policy in value:
            if policy.name in seen:
                raise ValueError(f"two policies are named {_quote(policy.name)}; a block must name one")
            seen.add(policy.name)
        return value


@dataclass(frozen=True, slots=True)
class Violation:
    """A violated policy: its name, its ``deny`` rendered (``C4 OR (C2 AND S1)``) and the labels evaluated."""

    policy: str
    expression: str
    labels: list[str]


class Configured(Protocol):
    """What the engine reads: a loaded configuration's ``governance`` section (:class:`sync.config.SyncConfig`)."""

    @property
    def governance(self) -> Governance: ...


def _paths_from_root(column: str) -> Iterable[str]:
    parts = column.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def labels_for(columns: Iterable[str], config: Configured, dataset: str | None = None) -> set[str]:
    """The labels that count for a file: the union over every column it contains, plus its dataset's.

    A column gets the labels of its exact path, of each parent path (a label on ``person.name``
    covers ``person.name.firstName``) and of each path inside it (a column ``person`` holding the
    whole object carries the labels of ``person.name``). ``dataset``, when given and labelled,
    adds its labels. Matching is exact and case-sensitive.
    """
    fields = config.governance.labels.fields
    found: set[str] = set()
    names = set(columns)
    for column in names:
        for path in _paths_from_root(column):
            found.update(fields.get(path, ()))
    for path, labels in fields.items():
        if any(path.startswith(f"{column}.") for column in names):
            found.update(labels)
    if dataset is not None:
        found.update(config.governance.labels.datasets.get(dataset, ()))
    return found


def evaluate(labels: AbstractSet[str], config: Configured, action: str = MARKETING_ACTION) -> list[Violation]:
    """The ENABLED policies for ``action`` whose ``deny`` is true for ``labels``, in file order.

    An empty list means the action is allowed. Each :class:`Violation` carries every evaluated label,
    sorted (core labels first, in the glossary's order).
    """
    present = frozenset(labels)
    ordered = sort_labels(present)
    return [
        Violation(policy=policy.name, expression=policy.deny.render(), labels=list(ordered))
        for policy in config.governance.policies
        if policy.applies_to(action) and policy.deny.matches(present)
    ]


def check_file(columns: Iterable[str], config: Configured, dataset: str | None = None) -> list[Violation]:
    """:func:`evaluate` the labels of a segment file's columns (and dataset) against push targeting."""
    return evaluate(labels_for(columns, config, dataset), config, MARKETING_ACTION)


def describe(violations: Sequence[Violation]) -> str:
    """The one-line reason a file is blocked, e.g.
    ``blocked by policy "No push targeting of C4 data" (deny C4; file labels C4, I1)``.

    Several violations: ``blocked by 2 policies: "A" (deny C4), "B" (deny C2 AND S1); file labels
    C2, C4, S1``. No violation: ``allowed``.
    """
    if not violations:
        return "allowed"
    labels = ", ".join(violations[0].labels) or "none"
    if len(violations) == 1:
        only = violations[0]
        return f"blocked by policy {_quote(only.policy)} (deny {only.expression}; file labels {labels})"
    listed = ", ".join(f"{_quote(v.policy)} (deny {v.expression})" for v in violations)
    return f"blocked by {len(violations)} policies: {listed}; file labels {labels}"
