"""domain holds the business rules: it imports nothing from push (the sending machinery), which
imports domain. Checked on the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import domain

DOMAIN = Path(domain.__file__).parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, wherever it is written."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def test_domain_imports_nothing_from_push() -> None:
    sources = sorted(DOMAIN.rglob("*.py"))
    assert DOMAIN / "deliveries.py" in sources and DOMAIN / "templates" / "sandbox.py" in sources
    offending = [
        f"{path.relative_to(DOMAIN.parent)}:{line}: {module}"
        for path in sources
        for line, module in imported_modules(path)
        if module == "push" or module.startswith("push.")
    ]
    assert offending == []


def test_the_scan_sees_push_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import push.engine\nfrom push import payloads\ndef f():\n    from pushy import x\n")
    assert imported_modules(source) == [(1, "push.engine"), (2, "push.payloads"), (4, "pushy.x")]
