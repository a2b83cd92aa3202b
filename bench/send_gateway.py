"""The gateway side of ``bench/send.py``: the worker settings it compares and the worker processes
that run them.

A :class:`Setting` is one batch size x concurrency (0: the gateway's default) for each of its
worker processes; ``parse_setting`` reads the ``--sweep`` form ``BATCHxCONCURRENCY[xWORKERS]``.
``start_gateway`` starts the setting's ``flask --app wsgi worker`` processes against an instance
and the emulators and returns once each says it is running; the :class:`Gateway` it returns sums
their CPU and peak RSS, and its caller stops it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from bench.common import Child
from bench.send_fixture import Children, Emulators, Instance, instance_env, proc_cpu, proc_status


@dataclass(frozen=True)
class Setting:
    """PUSHGATE_WORKER_BATCH_SIZE x PUSHGATE_WORKER_CONCURRENCY (0: default) of each of ``workers``
    worker processes (``flask --app wsgi worker``; they share a delivery through atomic claims)."""

    batch: int = 0
    concurrency: int = 0
    workers: int = 1

    def resolved(self) -> tuple[int, int]:
        from core.config import Settings

        fields = Settings.model_fields
        return (
            self.batch or fields["worker_batch_size"].default,
            self.concurrency or fields["worker_concurrency"].default,
        )

    @property
    def label(self) -> str:
        batch, concurrency = self.resolved()
        workers = f"x{self.workers}w" if self.workers > 1 else ""
        return f"{batch}x{concurrency}{workers}"

    @property
    def window(self) -> int:
        """Messages in flight at most: what a crash of every worker could leave to be sent again."""
        batch, concurrency = self.resolved()
        return batch * concurrency * self.workers


def parse_setting(text: str) -> Setting:
    parts = text.lower().removesuffix("w").split("x")
    if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"expected BATCHxCONCURRENCY[xWORKERS] such as 100x3 or 150x1x2, not {text!r}")
    numbers = [int(p) for p in parts]
    return Setting(numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 1)


class Gateway:
    """The worker process(es) of one setting."""

    def __init__(self, processes: list[Child]) -> None:
        self.processes = processes

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) for p in self.processes)

    def peak_kib(self) -> int:
        """Summed VmHWM of the worker processes (one process: its own peak RSS)."""
        return sum(proc_status(p.pid)["VmHWM"] for p in self.processes)

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def start_gateway(children: Children, instance: Instance, emulators: Emulators, setting: Setting) -> Gateway:
    env = instance_env(instance, emulators)
    env["PUSHGATE_WORKER"] = "off"  # nothing else in this process; the worker command runs its own
    if setting.batch:
        env["PUSHGATE_WORKER_BATCH_SIZE"] = str(setting.batch)
    if setting.concurrency:
        env["PUSHGATE_WORKER_CONCURRENCY"] = str(setting.concurrency)
    argv = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
    processes = [
        children.start(f"gateway-worker-{instance.subscriptions}-{setting.label}-{len(children.all)}", argv, env)
        for _ in range(setting.workers)
    ]
    for process in processes:
        process.wait_for(r"worker running")
    return Gateway(processes)
