"""The locks agree with the lists people edit: every direct dependency of requirements.in and
requirements-dev.in is pinned in its lock (requirements.txt, requirements-dev.txt) at the input's
version, every locked package is pinned exactly and carries its hashes, and the dev lock holds the
runtime lock's versions. Reads files only: no network, no resolver."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")]
COMMENT = re.compile(r"(^|\s)#.*$")  # pip's rule: a '#' at the start or after whitespace
HASH = re.compile(r"--hash[=\s]+(sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def logical_lines(path: Path) -> list[str]:
    """The file's lines with comments cut and backslash continuations joined, blanks dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = COMMENT.sub("", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    assert not pending.strip(), f"{path.name} ends inside a continued line"
    return lines


def direct_requirements(path: Path) -> dict[NormalizedName, Requirement]:
    """The requirements an input names, following its -r includes (-c constraints add none)."""
    found: dict[NormalizedName, Requirement] = {}
    for line in logical_lines(path):
        if line.startswith(("-r ", "--requirement ")):
            found.update(direct_requirements(path.parent / line.split(maxsplit=1)[1]))
        elif line.startswith("-"):
            continue
        else:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            assert name not in found, f"{path.name} names {name} twice"
            found[name] = requirement
    return found


def locked_pins(path: Path) -> dict[NormalizedName, Pin]:
    pins: dict[NormalizedName, Pin] = {}
    for line in logical_lines(path):
        if line.startswith("-"):
            continue
        spec = line.split(" --", 1)[0]
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1, f"{path.name}: {spec} is not pinned to one version"
        assert specifiers[0].operator == "==", f"{path.name}: {spec} is not pinned with =="
        assert not specifiers[0].version.endswith(".*"), f"{path.name}: {spec} pins a range"
        assert name not in pins, f"{path.name} pins {name} twice"
        pins[name] = Pin(specifiers[0].version, frozenset(HASH.findall(line)))
    return pins


@pytest.mark.parametrize(("source", "lock"), PAIRS)
def test_every_direct_dependency_is_locked_at_its_pin(source: str, lock: str) -> None:
    pins = locked_pins(ROOT / lock)
    problems = []
    for name, requirement in direct_requirements(ROOT / source).items():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this interpreter or platform: the lock need not hold it
        if name not in pins:
            problems.append(f"{name}: named in {source}, missing from {lock}")
        elif not requirement.specifier.contains(pins[name].version, prereleases=True):
            problems.append(f"{name}: {source} asks {requirement.specifier}, {lock} pins {pins[name].version}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


@pytest.mark.parametrize("lock", [lock for _, lock in PAIRS])
def test_every_locked_package_has_hashes(lock: str) -> None:
    pins = locked_pins(ROOT / lock)
    assert len(pins) > 50, f"{lock} pins only {len(pins)} packages: is it a lock?"
    unhashed = sorted(name for name, pin in pins.items() if not pin.hashes)
    assert not unhashed, f"{lock}: no --hash for {', '.join(unhashed)} (run `make lock`)"


def test_dev_lock_holds_the_runtime_lock() -> None:
    runtime, dev = locked_pins(ROOT / "requirements.txt"), locked_pins(ROOT / "requirements-dev.txt")
    differing = sorted(
        f"{name}: requirements.txt {pin.version}, requirements-dev.txt {dev[name].version if name in dev else 'none'}"
        for name, pin in runtime.items()
        if name not in dev or dev[name].version != pin.version
    )
    assert not differing, "run `make lock`:\n" + "\n".join(differing)
