"""Child processes that make up a local Synapse: started in stages, waited for, stopped together.

A stage starts all its processes at once and waits until each answers on its ``ready_url``
before the next stage starts (Synapse's workers need the main process to have prepared the
database). Each process appends its output to its own log file. ``stop`` ends them in reverse
order: SIGTERM, then SIGKILL for any still running after ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger("practice.synapse")

START_SECONDS = 120
STOP_SECONDS = 30


class StartError(RuntimeError):
    """A process exited or did not answer while starting; the message names it and its log."""


@dataclass
class ChildProcess:
    name: str
    argv: list[str]
    log_path: Path
    ready_url: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def launch(self, env: dict[str, str] | None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                self.argv, stdout=log_file, stderr=subprocess.STDOUT, env=env
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False


class ProcessGroup:
    """Processes started stage by stage and stopped together; a context manager as well."""

    def __init__(self, stages: Sequence[Sequence[ChildProcess]]) -> None:
        self.stages = [list(stage) for stage in stages]

    @property
    def processes(self) -> list[ChildProcess]:
        return [p for stage in self.stages for p in stage]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None and p.running()]

    def start(
        self,
        timeout: float = START_SECONDS,
        *,
        env: dict[str, str] | None = None,
        on_launch: Callable[[ChildProcess], None] | None = None,
    ) -> None:
        """Start every stage and wait for it; on failure stop what started and raise
        ``StartError``. ``on_launch`` hears of each process as soon as it runs."""
        try:
            for stage in self.stages:
                for process in stage:
                    process.launch(env or os.environ.copy())
                    if on_launch is not None:
                        on_launch(process)
                self._wait(stage, time.monotonic() + timeout, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, stage: list[ChildProcess], deadline: float, timeout: float) -> None:
        waiting = list(stage)
        while waiting:
            for process in list(waiting):
                if not process.running():
                    raise StartError(
                        f"{process.name} exited with code {process.returncode} while starting "
                        f"(log: {process.log_path})"
                    )
                if process.answers():
                    waiting.remove(process)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(p.name for p in waiting)
                raise StartError(f"{names} did not answer within {timeout:.0f}s")
            if waiting:
                time.sleep(0.2)

    def exited(self) -> ChildProcess | None:
        """A process that was started and has ended since, if any."""
        for process in self.processes:
            if process.proc is not None and not process.running():
                return process
        return None

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """End every process (reverse order); wait up to ``timeout`` seconds, then kill."""
        started = [p for p in reversed(self.processes) if p.proc is not None]
        for process in started:
            if process.running():
                log.info("Stopping %s (pid %d)", process.name, process.pid)
                assert process.proc is not None
                process.proc.terminate()
        deadline = time.monotonic() + timeout
        for process in started:
            assert process.proc is not None
            try:
                process.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", process.name, timeout)
                process.proc.kill()
                process.proc.wait()
            log.info("%s stopped (exit code %s)", process.name, process.proc.returncode)
            process.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
