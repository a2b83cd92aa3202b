"""What every benchmark here shares: the code version it measured and ending child processes.

``code_version(prefixes)`` names HEAD and the uncommitted changes under the paths a benchmark
measures (read-only git: benchmarks run while the tree is being edited), so a printed figure
always says which code it belongs to. ``end_children_on_signals()`` turns SIGTERM and SIGHUP into
``SystemExit``, so the ``finally`` blocks that stop child processes run on those signals too.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def code_version(prefixes: tuple[str, ...], *, untracked: bool = False) -> str:
    """``HEAD abc1234 (clean)`` or ``HEAD abc1234 + uncommitted changes to a.py, b.py``."""

    def git(*argv: str) -> str:
        try:
            done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    status = git("status", "--porcelain", f"--untracked-files={'all' if untracked else 'no'}")
    changed = [line[3:] for line in status.splitlines() if line[3:].startswith(prefixes)]
    return f"HEAD {head}" + (f" + uncommitted changes to {', '.join(changed)}" if changed else " (clean)")


def _raise_system_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def end_children_on_signals() -> None:
    signal.signal(signal.SIGTERM, _raise_system_exit)
    signal.signal(signal.SIGHUP, _raise_system_exit)
