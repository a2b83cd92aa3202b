"""What every benchmark here shares: the code version it measured and ending child processes.

``code_version(prefixes)`` names HEAD and the uncommitted changes under the paths a benchmark
measures (read-only git: benchmarks run while the tree is being edited), so a printed figure
always says which code it belongs to. ``end_children_on_signals()`` turns SIGTERM and SIGHUP into
``SystemExit``, so the ``finally`` blocks that stop child processes run on those signals too.
``remove_workdir(folder, keep)`` and ``exit_with(main, interrupted)`` are how every benchmark ends.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

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


def remove_workdir(workdir: Path, keep: bool = False) -> None:
    """Remove the benchmark's temporary folder, or say where it is (``--keep``)."""
    if keep:
        print(f"kept {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def exit_with(main: Callable[[], int], interrupted: str) -> NoReturn:
    """Exit with ``main()``'s status; on Ctrl-C (its ``finally`` blocks having run) say what was
    stopped and exit 130."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        sys.exit(130)
