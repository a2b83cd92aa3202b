"""The OpenAPI document and the reference page: complete, public, self-contained, consistent."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Keys


def api_rules(app: Flask) -> list[Any]:
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")]


def test_every_api_route_declares_an_operation(app: Flask) -> None:
    missing = [rule.rule for rule in api_rules(app) if not hasattr(app.view_functions[rule.endpoint], "openapi")]
    assert missing == []
    assert len(api_rules(app)) >= 10


def test_the_document_lists_every_route_and_method(app: Flask, client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.json
    assert document["openapi"].startswith("3.1")
    for rule in api_rules(app):
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            op = document["paths"][path][method.lower()]
            assert op["summary"]
            role = getattr(app.view_functions[rule.endpoint], "required_role", None)
            if role is None:
                assert op["security"] == [], (path, method)
            else:
                assert op["x-required-role"] == role and op["security"] == [{"apiKey": []}]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves_and_bodies_are_described(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    for ref in set(_refs(document)):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] in schemas, ref
    apps = document["paths"]["/api/v1/apps"]["post"]
    assert apps["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AppCreate"}
    assert apps["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/AppOut")
    assert schemas["ApnsToken"]["properties"]["key_p8"]["writeOnly"] is True
    listing = document["paths"]["/api/v1/apps/{app_id}/subscriptions"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "app_id",
        "platform",
        "user_key",
        "disabled",
        "limit",
        "cursor",
        "sort",
    }
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            if method == "get" and "next_cursor" in str(op["responses"]):
                assert any(p["name"] == "cursor" for p in op["parameters"]), path


def _statuses(node: ast.expr) -> set[int] | None:
    """The statuses an expression a view returns can stand for; None when it names none (200)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return (_statuses(node.body) or set()) | (_statuses(node.orelse) or set())
    if isinstance(node, ast.Tuple) and len(node.elts) >= 2:
        return _statuses(node.elts[1])
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name in RETURNS:
            return {RETURNS[name]}
        for keyword in node.keywords:
            if keyword.arg == "status":
                return _statuses(keyword.value)
    return None


#: Helpers that make a view's answer with a status of their own (gateway/api/common.py).
RETURNS = {"created": 201, "no_content": 204}


def returned_statuses(view: Any) -> set[int]:
    """Every status ``view`` returns, read from its source: ``return x, 201``, ``201 if c else 200``,
    ``created(...)``, ``no_content()``, ``Response(status=...)``; any other answer is a 200."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(view))))
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    found: set[int] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # a helper defined inside the view returns to the view, not to the client
            if isinstance(child, ast.Return) and child.value is not None:
                found.update(_statuses(child.value) or {200})
            visit(child)

    visit(function)
    return found


def test_every_status_a_view_returns_is_declared(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    checked = 0
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, "openapi"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            declared = document["paths"][path][method.lower()]["responses"]
            for status in returned_statuses(view):
                key = str(status) if status < 400 else f"{str(status)[0]}XX"
                assert key in declared, (rule.rule, method, status, sorted(declared))
            successes = {int(key) for key in declared if key[0] == "2"}
            assert successes <= returned_statuses(view), (rule.rule, method, "declares a status it never returns")
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/api/v1/profiles/{external_id}", "put", {"201", "200"}),
        ("/api/v1/deliveries", "post", {"201", "200"}),
        ("/api/v1/subscriptions", "post", {"201", "200"}),
        ("/api/v1/sync/{job}/run", "post", {"202"}),
        ("/api/v1/quarantine/{address_id}", "delete", {"204"}),
    ],
)
def test_routes_with_several_answers_declare_each(
    client: FlaskClient, path: str, method: str, statuses: set[str]
) -> None:
    responses = client.get("/api/v1/openapi.json").json["paths"][path][method]["responses"]
    assert {key for key in responses if key[0] == "2"} == statuses
    assert {"4XX", "5XX"} <= set(responses)
    if len(statuses) > 1:
        assert all(responses[key]["description"] != "success" for key in statuses)  # each says what it means


def test_the_answers_match_the_document(client: FlaskClient, keys: Keys) -> None:
    """The 201-then-200 routes, replayed for real."""
    put = [client.put("/api/v1/profiles/CRM-1", json={"first_name": "Ada"}, headers=keys.marketer) for _ in range(2)]
    assert [answer.status_code for answer in put] == [201, 200]
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "201 (the profile was created), 200 (the profile existed and was updated)" in page


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_reference_page_shows_every_operation_without_external_resources(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = _Collector()
    page.feed(response.get_data(as_text=True))
    text = " ".join(page.text)
    assert "script" not in {tag for tag, _ in page.tags}
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value)
    anchors = {attrs.get("id") for _, attrs in page.tags}
    for path, methods in document["paths"].items():
        assert path in text
        for op in methods.values():
            assert op["summary"] in text
            assert op["operationId"].replace(".", "-") in anchors
            if "x-required-role" in op:
                assert f"role: {op['x-required-role']}" in text
    for name in document["components"]["schemas"]:
        assert f"schema-{name}" in anchors
    links = {attrs["href"][1:] for tag, attrs in page.tags if tag == "a" and (attrs.get("href") or "").startswith("#")}
    assert links <= anchors, links - anchors
    assert "invalid field" not in text and "PRIVATE KEY" not in text


def test_docs_need_no_key(client: FlaskClient) -> None:
    assert client.get("/api/v1/openapi.json", headers={"Authorization": "Bearer nonsense"}).status_code == 200
    assert client.get("/api/v1/docs").status_code == 200
