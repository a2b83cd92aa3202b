"""What every benchmark here shares: the code version it measured and ending child processes.

``code_version(prefixes)`` names HEAD and the uncommitted changes under the paths a benchmark
measures (read-only git: benchmarks run while the tree is being edited), so a printed figure
always says which code it belongs to. ``end_children_on_signals()`` turns SIGTERM and SIGHUP into
``SystemExit``, so the ``finally`` blocks that stop child processes run on those signals too.
``remove_workdir(folder, keep)`` and ``exit_with(main, interrupted)`` are how every benchmark ends.
:class:`Child` is a child process in its own process group with its output in a log file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Child:
    """A child process in its own process group, output to a log file; stopped whole on exit."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    def start(self) -> Child:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # argv built here, no shell
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we end its group ourselves
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no output)"

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Wait until a line of its output matches ``pattern``."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while time.monotonic() < deadline:
            match = compiled.search(self.log_text())
            if match:
                return match
            self.check_alive()
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no line matching {pattern!r} within {timeout:.0f}s:\n{self.log_tail()}")

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.name} did not finish within {timeout:.0f}s:\n{self.log_tail()}") from None

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)  # the group we created for it, nothing else
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None
