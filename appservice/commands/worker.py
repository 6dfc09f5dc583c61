"""Running recorded commands after the pipeline's transaction has committed.

The intake writes a job row inside the pipeline's transaction and tells the worker which event
it belongs to. The worker cannot see the row before that transaction commits, so it looks again
(briefly backing off) until the row appears, or until the event is marked processed without a
row (the transaction failed or the command was a duplicate). Rows found at start, left by a crash
before they ran, run then. Each sender's commands run one after another in the order they were
sent (``!pb delete`` before ``!pb confirm delete``); different senders run side by side.

A job is marked done after it ran: a crash in between runs it again, which the commands allow
(their effects are idempotent and their replies reuse their transaction ids).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from bridge.clock import now_ms
from bridge.events.queue import RETENTION_MS
from bridge.metrics import Metrics

from .parse import COMMANDS, INVITED, LEAVE, UNKNOWN
from .runner import CommandRunner
from .store import CommandStore, Job

log = logging.getLogger("practice.commands")

_FETCH_LIMIT = 200
_POLL_SECONDS = 30.0  # a safety net: rows are normally found through expect()
_EXPECT_TIMEOUT_MS = 120_000
_RETRY_DELAY = 1.0
_MAX_PARALLEL = 8
_KNOWN = COMMANDS | {INVITED, LEAVE}


class CommandWorker:
    def __init__(
        self, store: CommandStore, runner: CommandRunner, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.runner = runner
        self.metrics = metrics or Metrics()
        # event id -> (its sequence number in the intake queue, give up looking at (ms))
        self._expected: dict[str, tuple[int, int]] = {}
        self._held: set[int] = set()  # job ids queued or running
        self._lanes: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(_MAX_PARALLEL)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None
        self._last_prune = 0

    def expect(self, event_id: str, seq: int) -> None:
        """The intake recorded a command for this event (committed soon, or rolled back)."""
        self._expected[event_id] = (seq, now_ms() + _EXPECT_TIMEOUT_MS)
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._loader is None:
            self._idle.clear()
            self._wake.set()
            self._loader = asyncio.create_task(self._load_loop(), name="bot-commands")

    async def stop(self) -> None:
        """Stop; a command cut short stays pending and runs after a restart."""
        tasks = [t for t in (self._loader, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loader = None
        self._workers.clear()
        self._lanes.clear()
        self._held.clear()

    async def wait_idle(self, timeout: float = 30) -> None:
        """Wait until every recorded command has run (for tests)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _load_loop(self) -> None:
        delay = 0.02
        while True:
            try:
                # Not wait_for: on 3.11 it can lose a cancellation that meets a wake-up.
                async with asyncio.timeout(_POLL_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._load()
                await self._maybe_prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Loading bot commands failed; retrying")
                await asyncio.sleep(_RETRY_DELAY)
                self._wake.set()
                continue
            if self._expected:
                # Rows not visible yet: their transaction has not committed. Look again soon.
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                self._wake.set()
            else:
                delay = 0.02
                self._check_idle()

    async def _load(self) -> None:
        # Processed before the read below: a committed row is then certainly visible to it.
        committed = await self.store.committed([seq for seq, _ in self._expected.values()])
        jobs = await self.store.pending(_FETCH_LIMIT + len(self._held))
        for job in jobs:
            self._expected.pop(job.event_id, None)
            if job.id not in self._held:
                self._held.add(job.id)
                self._enqueue(job)
        now = now_ms()
        for event_id, (seq, give_up) in list(self._expected.items()):
            if seq in committed or give_up < now:
                del self._expected[event_id]

    def _enqueue(self, job: Job) -> None:
        lane = self._lanes.get(job.sender)
        if lane is None:
            lane = self._lanes[job.sender] = deque()
            self._workers[job.sender] = asyncio.create_task(
                self._lane(job.sender, lane), name=f"bot-commands-{job.sender}"
            )
        lane.append(job)

    async def _lane(self, sender: str, lane: deque[Job]) -> None:
        try:
            while lane:
                job = lane[0]
                async with self._slots:
                    await self._run(job)
                lane.popleft()
                self._held.discard(job.id)
        finally:
            if self._workers.get(sender) is asyncio.current_task():
                del self._workers[sender]
                del self._lanes[sender]
            self._check_idle()

    async def _run(self, job: Job) -> None:
        try:
            outcome = await self.runner.run(job)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # The type and the command only: an error's text could quote what was typed.
            log.error(
                "Command %s (job %d) from %s failed (%s)",
                job.command,
                job.id,
                job.sender,
                type(e).__name__,
            )
            outcome = f"failed:{type(e).__name__}"
            try:
                await self.runner.apologise(job)
            except Exception:
                log.warning("Could not tell %s that command %d failed", job.sender, job.id)
        log.info("Command %s from %s in %s: %s", job.command, job.sender, job.room_id, outcome)
        self._count(job.command, outcome)
        while True:
            try:
                await self.store.mark_done(job.id, outcome)
                return
            except Exception:
                log.warning("Could not mark command %d done; retrying", job.id, exc_info=True)
                await asyncio.sleep(_RETRY_DELAY)

    def _count(self, command: str, outcome: str) -> None:
        """Commands by name (one of a fixed few) and the kind of outcome: ok, refused, ignored
        or failed, without the reason."""
        name = command if command in _KNOWN else UNKNOWN
        self.metrics.commands.labels(name, outcome.partition(":")[0]).inc()

    def _check_idle(self) -> None:
        if not self._expected and not self._held and not self._wake.is_set():
            self._idle.set()

    async def _maybe_prune(self) -> None:
        now = now_ms()
        if now - self._last_prune > 3600_000:
            self._last_prune = now
            # Kept as long as the intake queue remembers event ids, and a little longer.
            await self.store.prune(now - 2 * RETENTION_MS)
