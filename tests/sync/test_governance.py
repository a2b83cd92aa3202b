"""Governance: labels on columns and datasets, Policy Service-shaped policies, one-line config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from sync.config import SyncConfig, load_sync_config
from sync.governance import (
    CORE_LABELS,
    MARKETING_ACTION,
    Violation,
    check_file,
    describe,
    evaluate,
    labels_for,
    sort_labels,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "sync" / "examples" / "sync-config.example.json"
PUSH = "https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/custom/pushTargeting"


def policy(
    name: str, deny: dict[str, Any], *, status: str = "ENABLED", refs: list[str] | None = None
) -> dict[str, Any]:
    return {"name": name, "status": status, "marketingActionRefs": refs or [PUSH], "deny": deny}


def label(name: str) -> dict[str, Any]:
    return {"label": name}


def op(operator: str, *operands: dict[str, Any]) -> dict[str, Any]:
    return {"operator": operator, "operands": list(operands)}


def config(
    *policies: dict[str, Any], fields: dict[str, list[str]] | None = None, datasets: dict[str, list[str]] | None = None
) -> SyncConfig:
    data = {"governance": {"labels": {"fields": fields or {}, "datasets": datasets or {}}, "policies": list(policies)}}
    return SyncConfig.model_validate(data, strict=True)


def write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "sync.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def load_error(tmp_path: Path, content: Any) -> str:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_sync_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"PUSHGATE_SYNC_CONFIG {path}: ")
    return message.removeprefix(f"PUSHGATE_SYNC_CONFIG {path}: ")


# --- evaluation -------------------------------------------------------------------------------


def test_no_policy_allows_everything() -> None:
    cfg = config(fields={"email": ["I1", "C4"]})
    assert check_file(["email"], cfg) == []
    assert evaluate({"C4", "C12"}, SyncConfig()) == []


def test_bare_label_deny() -> None:
    cfg = config(policy("No push targeting of C4 data", label("C4")))
    assert evaluate({"C4", "I1"}, cfg) == [
        Violation(policy="No push targeting of C4 data", expression="C4", labels=["C4", "I1"])
    ]
    assert evaluate({"C5", "I1"}, cfg) == []
    assert evaluate(set(), cfg) == []


@pytest.mark.parametrize(
    ("labels", "violated"),
    [({"C2", "S1"}, True), ({"C2"}, False), ({"S1"}, False), ({"C2", "S1", "I1"}, True), (set(), False)],
)
def test_and_needs_every_label(labels: set[str], violated: bool) -> None:
    cfg = config(policy("Partner data with precise location", op("AND", label("C2"), label("S1"))))
    assert bool(evaluate(labels, cfg)) is violated


@pytest.mark.parametrize(
    ("labels", "violated"), [({"C5"}, True), ({"C6"}, True), ({"C5", "C6"}, True), ({"C7"}, False)]
)
def test_or_needs_any_label(labels: set[str], violated: bool) -> None:
    cfg = config(policy("Interest or on-site ads", op("OR", label("C5"), label("C6"))))
    assert bool(evaluate(labels, cfg)) is violated


@pytest.mark.parametrize(
    ("labels", "violated"),
    [
        ({"C4"}, True),
        ({"C2", "S1"}, True),
        ({"C2"}, False),
        ({"S1", "I1"}, False),
        ({"C3", "I1", "I2"}, True),
        ({"C3", "I2"}, False),
    ],
)
def test_nested_expression(labels: set[str], violated: bool) -> None:
    deny = op("OR", label("C4"), op("AND", label("C2"), label("S1")), op("AND", label("C3"), op("OR", label("I1"))))
    cfg = config(policy("Nested", deny))
    assert bool(evaluate(labels, cfg)) is violated
    assert config(policy("Nested", deny)).governance.policies[0].deny.render() == "C4 OR (C2 AND S1) OR (C3 AND I1)"


def test_rendering_parenthesises_nested_operators() -> None:
    cfg = config(
        policy("a", op("AND", label("C1"), op("OR", label("C3"), label("C7")))),
        policy("b", op("OR", label("C1"), op("AND", label("C3"), op("OR", label("I1"), label("I2"))))),
        policy("c", op("AND", label("C9"))),
    )
    assert [p.deny.render() for p in cfg.governance.policies] == [
        "C1 AND (C3 OR C7)",
        "C1 OR (C3 AND (I1 OR I2))",
        "C9",
    ]


@pytest.mark.parametrize("status", ["DRAFT", "DISABLED"])
def test_only_enabled_policies_are_enforced(status: str) -> None:
    cfg = config(policy("Not yet", label("C4"), status=status), policy("Enforced", label("C5")))
    assert evaluate({"C4"}, cfg) == []
    assert [v.policy for v in evaluate({"C4", "C5"}, cfg)] == ["Enforced"]


@pytest.mark.parametrize(
    "refs",
    [
        [PUSH],
        ["https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/core/pushTargeting"],
        ["../marketingActions/custom/pushTargeting"],
        ["pushTargeting"],
        ["https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/custom/emailTargeting", PUSH + "/"],
    ],
)
def test_policies_naming_push_targeting_apply(refs: list[str]) -> None:
    cfg = config(policy("Push", label("C4"), refs=refs))
    assert [v.policy for v in evaluate({"C4"}, cfg)] == ["Push"]


@pytest.mark.parametrize(
    "refs",
    [
        ["https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/core/exportToThirdParty"],
        ["https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/custom/pushTargetingLegacy"],
        ["https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/custom/xpushTargeting"],
    ],
)
def test_other_marketing_actions_are_ignored(refs: list[str]) -> None:
    cfg = config(policy("Export", label("C4"), refs=refs))
    assert evaluate({"C4"}, cfg) == []
    assert MARKETING_ACTION == "pushTargeting"


def test_evaluate_for_another_action() -> None:
    export = "https://platform.adobe.io/data/foundation/dulepolicy/marketingActions/core/exportToThirdParty"
    cfg = config(policy("Export", label("C2"), refs=[export]), policy("Push", label("C2")))
    assert [v.policy for v in evaluate({"C2"}, cfg, action="exportToThirdParty")] == ["Export"]
    assert [v.policy for v in evaluate({"C2"}, cfg)] == ["Push"]


def test_violations_keep_file_order_and_labels_are_sorted() -> None:
    cfg = config(policy("second", label("C10")), policy("first", label("C2")))
    violations = evaluate({"L1", "S1", "C10", "I2", "C2"}, cfg)
    assert [v.policy for v in violations] == ["second", "first"]
    assert violations[0].labels == ["C2", "C10", "I2", "S1", "L1"]
    assert sort_labels(["S2", "custom", "C12", "C1", "I1", "Another", "C1"]) == [
        "C1",
        "C12",
        "I1",
        "S2",
        "Another",
        "custom",
    ]


def test_custom_labels() -> None:
    cfg = config(
        policy("Banking", op("AND", label("L1"), label("I1"))),
        policy("Third party", label("Third-Party")),
        fields={"_acme.banking.tier": ["L1"], "email": ["I1"], "_acme.vendorScore": ["Third-Party"]},
    )
    assert check_file(["_acme.banking.tier"], cfg) == []
    assert [v.policy for v in check_file(["_acme.banking.tier", "email"], cfg)] == ["Banking"]
    assert [v.policy for v in check_file(["_acme.vendorScore"], cfg)] == ["Third party"]


# --- where labels come from -------------------------------------------------------------------


def test_labels_of_every_column_count() -> None:
    cfg = config(fields={"email": ["I1"], "loyaltyTier": ["C2"], "segmentId": []})
    assert labels_for(["email", "loyaltyTier", "unlabelled"], cfg) == {"I1", "C2"}
    assert labels_for(["unlabelled"], cfg) == set()
    assert labels_for([], cfg) == set()


def test_matching_is_exact_and_case_sensitive() -> None:
    cfg = config(fields={"personalEmail.address": ["I1"]})
    assert labels_for(["personalemail.address"], cfg) == set()
    assert labels_for(["personalEmail.addressLine"], cfg) == set()
    assert labels_for(["personalEmail.address"], cfg) == {"I1"}


def test_parent_path_labels_cover_children() -> None:
    cfg = config(fields={"person.name": ["I1"], "person": ["C3"], "person.birthDate": ["I2"]})
    assert labels_for(["person.name.firstName"], cfg) == {"I1", "C3"}
    assert labels_for(["person.name"], cfg) == {"I1", "C3"}
    assert labels_for(["person.gender"], cfg) == {"C3"}
    assert labels_for(["personality.score"], cfg) == set()  # a prefix of the text is not a parent path


def test_a_column_holding_an_object_carries_the_labels_inside_it() -> None:
    cfg = config(fields={"person.name.firstName": ["I1"], "_acme.location.lat": ["S1"]})
    assert labels_for(["person"], cfg) == {"I1"}
    assert labels_for(["person.name"], cfg) == {"I1"}
    assert labels_for(["_acme"], cfg) == {"S1"}
    assert labels_for(["person.gender"], cfg) == set()


def test_dataset_labels_apply_to_the_whole_file() -> None:
    cfg = config(
        policy("No C2 with precise location", op("AND", label("C2"), label("S1"))),
        fields={"_acme.location": ["S1"]},
        datasets={"Partner Profiles": ["C2"]},
    )
    assert labels_for(["id"], cfg, dataset="Partner Profiles") == {"C2"}
    assert labels_for(["id"], cfg, dataset="Unknown dataset") == set()
    assert check_file(["_acme.location.latitude"], cfg) == []
    assert [v.policy for v in check_file(["_acme.location.latitude"], cfg, dataset="Partner Profiles")] == [
        "No C2 with precise location"
    ]


def test_describe_is_one_line() -> None:
    cfg = config(policy("No push targeting of C4 data", label("C4")), fields={"email": ["I1"], "adSegments": ["C4"]})
    violations = check_file(["email", "adSegments"], cfg)
    assert describe(violations) == 'blocked by policy "No push targeting of C4 data" (deny C4; file labels C4, I1)'
    assert describe([]) == "allowed"


def test_describe_several_violations() -> None:
    cfg = config(policy("No C4", label("C4")), policy("Partner location", op("AND", label("C2"), label("S1"))))
    text = describe(evaluate({"C4", "C2", "S1"}, cfg))
    assert text == (
        'blocked by 2 policies: "No C4" (deny C4), "Partner location" (deny C2 AND S1); file labels C2, C4, S1'
    )


# --- loading ----------------------------------------------------------------------------------


def test_no_file_is_an_empty_config() -> None:
    cfg = load_sync_config(None)
    assert cfg.governance.policies == []
    assert cfg.governance.labels.fields == {}
    assert cfg.audiences.names == {}


def test_minimal_and_unknown_top_level_sections(tmp_path: Path) -> None:
    assert load_sync_config(write(tmp_path, {})) == SyncConfig()
    cfg = load_sync_config(write(tmp_path, {"exports": {"datasets": ["x"]}, "audiences": {"names": {"s1": "Gold"}}}))
    assert cfg.model_extra == {"exports": {"datasets": ["x"]}}
    assert cfg.audiences.names == {"s1": "Gold"}


def test_policy_service_response_properties_are_tolerated(tmp_path: Path) -> None:
    pasted = policy("Pasted", label("C4")) | {
        "description": "from GET /policies/custom",
        "id": "5c6dacdf685a4913dc48937c",
        "imsOrg": "{ORG_ID}",
        "created": 1550691551888,
        "createdClient": "string",
        "updatedUser": "string",
        "_links": {"self": {"href": "https://platform.adobe.io/data/foundation/dulepolicy/policies/custom/5c6d"}},
    }
    cfg = load_sync_config(write(tmp_path, {"governance": {"policies": [pasted]}}))
    assert cfg.governance.policies[0].description == "from GET /policies/custom"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match=r"^PUSHGATE_SYNC_CONFIG .*absent\.json: no such file$"):
        load_sync_config(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_sync_config(tmp_path)


def test_bad_json(tmp_path: Path) -> None:
    assert load_error(tmp_path, '{"governance": {"policies": []},\n}') == (
        "not valid JSON: Expecting property name enclosed in double quotes at line 2 column 1"
    )
    assert load_error(tmp_path, "") == "not valid JSON: Expecting value at line 1 column 1"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, {})

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConfigError) as info:
        load_sync_config(path)
    assert str(info.value) == f"PUSHGATE_SYNC_CONFIG {path}: cannot read the file (Permission denied)"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "sync.json"
    path.write_bytes(b'{"audiences": {"names": {"s": "\xe9t\xe9"}}}')
    with pytest.raises(ConfigError, match=r"not UTF-8 text"):
        load_sync_config(path)


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = '{"governance": {"labels": {"fields": {"email": ["I1"], "email": []}}}}'
    assert load_error(tmp_path, text) == 'not valid JSON: key "email" twice in one object'


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert load_error(tmp_path, []) == "expected a JSON object at the top, got an array"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"governance": {"policies": [policy("p", op("XOR", label("C4")))]}},
            'governance.policies[0].deny: unknown operator "XOR" (expected AND or OR)',
        ),
        (
            {"governance": {"policies": [policy("p", op("and", label("C4")))]}},
            'governance.policies[0].deny: unknown operator "and" (expected AND or OR)',
        ),
        (
            {"governance": {"policies": [policy("p", op("OR", label("C4"), op("AND")))]}},
            "governance.policies[0].deny.operands[1]: operator AND needs at least one operand",
        ),
        (
            {"governance": {"policies": [policy("p", {"label": "C4", "operator": "OR", "operands": [label("C1")]})]}},
            'governance.policies[0].deny: an expression is either a "label" or an "operator" with "operands", not both',
        ),
        (
            {"governance": {"policies": [policy("p", {})]}},
            'governance.policies[0].deny: empty expression: give a "label", or an "operator" with "operands"',
        ),
        (
            {"governance": {"policies": [policy("p", {"operands": [label("C1")]})]}},
            'governance.policies[0].deny: "operands" without an "operator" (AND or OR)',
        ),
        (
            {"governance": {"policies": [policy("p", {"labels": "C4"})]}},
            "governance.policies[0].deny.labels: unknown key",
        ),
        (
            {"governance": {"policies": [policy("p", op("OR", label("C4"), label("c4")))]}},
            'governance.policies[0].deny.operands[1].label: unknown label "c4": labels are case-sensitive, '
            'the core label is "C4"',
        ),
        (
            {"governance": {"policies": [policy("p", label("bad label"))]}},
            'governance.policies[0].deny.label: invalid label "bad label": a label is 1 to 64 letters, digits, '
            "_, -, . or :, starting with a letter or digit",
        ),
        (
            {"governance": {"policies": [policy("p", label(""))]}},
            'governance.policies[0].deny.label: invalid label "": a label is 1 to 64 letters, digits, '
            "_, -, . or :, starting with a letter or digit",
        ),
        (
            {"governance": {"labels": {"fields": {"personalEmail.address": ["i1"]}}}},
            'governance.labels.fields["personalEmail.address"][0]: unknown label "i1": labels are case-sensitive, '
            'the core label is "I1"',
        ),
        (
            {"governance": {"labels": {"datasets": {"Loyalty": ["C4", "C 5"]}}}},
            'governance.labels.datasets.Loyalty[1]: invalid label "C 5": a label is 1 to 64 letters, digits, '
            "_, -, . or :, starting with a letter or digit",
        ),
        (
            {"governance": {"policies": [policy("p", label("C4"), status="ACTIVE")]}},
            'governance.policies[0].status: unknown status "ACTIVE" (expected ENABLED, DRAFT or DISABLED)',
        ),
        (
            {"governance": {"policies": [policy("p", label("C4")) | {"marketingActionRefs": []}]}},
            "governance.policies[0].marketingActionRefs: a policy needs at least one marketing action",
        ),
        (
            {"governance": {"policies": [{"name": "p", "status": "ENABLED", "deny": label("C4")}]}},
            "governance.policies[0].marketingActionRefs: required",
        ),
        (
            {"governance": {"policies": [policy("p", label("C4")), policy("p", label("C5"))]}},
            'governance.policies: two policies are named "p"; a block must name one',
        ),
        (
            {"governance": {"policies": [policy("", label("C4"))]}},
            "governance.policies[0].name: must not be empty",
        ),
        (
            {"governance": {"policies": [policy("two\nlines", label("C4"))]}},
            "governance.policies[0].name: must be one line of text",
        ),
        ({"governance": {"label": {}}}, "governance.label: unknown key"),
        ({"governance": {"labels": {"field": {}}}}, "governance.labels.field: unknown key"),
        ({"audiences": {"name": {}}}, "audiences.name: unknown key"),
    ],
)
def test_malformed_governance_is_one_clear_line(tmp_path: Path, content: Any, message: str) -> None:
    assert load_error(tmp_path, content) == message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"governance": []}, "governance: expected an object, got an array"),
        ({"governance": {"policies": {"name": "p"}}}, "governance.policies: expected an array, got an object"),
        ({"governance": {"policies": ["C4"]}}, "governance.policies[0]: expected an object, got a string"),
        (
            {"governance": {"labels": {"fields": {"email": "I1"}}}},
            "governance.labels.fields.email: expected an array, got a string",
        ),
        (
            {"governance": {"labels": {"fields": {"email": [1]}}}},
            "governance.labels.fields.email[0]: expected a string, got a number",
        ),
        (
            {"governance": {"labels": {"datasets": {"d": None}}}},
            "governance.labels.datasets.d: expected an array, got null",
        ),
        ({"audiences": {"names": {"seg-1": 7}}}, 'audiences.names["seg-1"]: expected a string, got a number'),
        ({"audiences": {"names": {"seg-1": ""}}}, 'audiences.names["seg-1"]: must not be empty'),
        (
            {"governance": {"policies": [policy("p", label("C4")) | {"marketingActionRefs": PUSH}]}},
            "governance.policies[0].marketingActionRefs: expected an array, got a string",
        ),
        (
            {"governance": {"policies": [policy("p", label("C4"), status=True)]}},  # type: ignore[arg-type]
            "governance.policies[0].status: Input should be 'ENABLED', 'DRAFT' or 'DISABLED', got true",
        ),
        (
            {"governance": {"policies": [policy("p", {"label": 4})]}},
            "governance.policies[0].deny.label: expected a string, got a number",
        ),
    ],
)
def test_wrong_types_are_one_clear_line(tmp_path: Path, content: Any, message: str) -> None:
    assert load_error(tmp_path, content) == message


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("/personalEmail/address", "name columns as the files do, with dots"),
        ("person..name", "empty path segment"),
        (".email", "empty path segment"),
        (" email", "spaces around the name"),
        ("", "empty path segment"),
    ],
)
def test_field_paths_are_checked(tmp_path: Path, field: str, message: str) -> None:
    error = load_error(tmp_path, {"governance": {"labels": {"fields": {field: ["I1"]}}}})
    assert error.startswith(f"governance.labels.fields[{json.dumps(field)}]: field {json.dumps(field)}: ")
    assert message in error


def test_nesting_depth_is_bounded(tmp_path: Path) -> None:
    deny: dict[str, Any] = label("C4")
    for _ in range(10):
        deny = op("OR", deny)
    cfg = load_sync_config(write(tmp_path, {"governance": {"policies": [policy("deep", deny)]}}))
    assert [v.policy for v in evaluate({"C4"}, cfg)] == ["deep"]
    deny = op("AND", deny)
    assert load_error(tmp_path, {"governance": {"policies": [policy("deep", deny)]}}) == (
        "governance.policies[0].deny: operators nested more than 10 levels deep"
    )
    for depth in (300, 5000):  # past pydantic's recursion guard, then past the JSON parser's
        text = '{"operator": "AND", "operands": [' * depth + '{"label": "C4"}' + "]}" * depth
        error = load_error(
            tmp_path,
            '{"governance": {"policies": [{"name": "deep", "status": "ENABLED", '
            f'"marketingActionRefs": ["{PUSH}"], "deny": {text}}}]}}}}',
        )
        assert "nested too deeply" in error
        assert len(error) < 200


def test_several_problems_report_the_first(tmp_path: Path) -> None:
    content = {"governance": {"labels": {"fields": {"a": ["x y"], "b": ["c1"]}}}}
    assert load_error(tmp_path, content).endswith("(and 1 more)")


def test_every_core_label_is_accepted(tmp_path: Path) -> None:
    assert len(CORE_LABELS) == 16
    cfg = load_sync_config(write(tmp_path, {"governance": {"labels": {"datasets": {"all": list(CORE_LABELS)}}}}))
    assert labels_for([], cfg, dataset="all") == set(CORE_LABELS)


# --- the example file -------------------------------------------------------------------------


def test_example_file_loads_and_evaluates() -> None:
    cfg = load_sync_config(EXAMPLE)
    policies = {p.name: p for p in cfg.governance.policies}
    enforced = [name for name, p in policies.items() if p.applies_to()]
    assert enforced == [
        "No push targeting of C4 data",
        "No precise location in partner data",
        "No interest-based or identified ad-network data",
        "No push targeting on banking information",
    ]
    assert cfg.audiences.names["8f2b6c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f"] == "Lapsed loyalty members"

    # The usual push audience file: identity and contact columns only.
    assert check_file(["identityMap", "personalEmail.address", "homeAddress.postalCode"], cfg) == []
    # Ad-network interest data is never used for push targeting.
    violations = check_file(["personalEmail.address", "_acme.adNetwork.interestSegments"], cfg)
    assert [v.policy for v in violations] == [
        "No push targeting of C4 data",
        "No interest-based or identified ad-network data",
    ]
    assert violations[1].expression == "C5 OR (C3 AND I1)"
    # Partner data combined with a directly identifying name (a child of the labelled person.name).
    assert describe(check_file(["person.name.firstName", "_acme.partnerScores.churn"], cfg)) == (
        'blocked by policy "No interest-based or identified ad-network data" '
        "(deny C5 OR (C3 AND I1); file labels C2, C3, I1)"
    )
    # Precise location is fine alone, not in a file from the C2-labelled loyalty dataset.
    assert check_file(["_acme.lastKnownLocation.latitude"], cfg) == []
    assert describe(check_file(["_acme.lastKnownLocation.latitude"], cfg, dataset="Acme Loyalty Members")) == (
        'blocked by policy "No precise location in partner data" (deny C2 AND S1; file labels C2, S1)'
    )
    # The custom banking label.
    assert [v.policy for v in check_file(["_acme.banking.accountTier"], cfg)] == [
        "No push targeting on banking information"
    ]
