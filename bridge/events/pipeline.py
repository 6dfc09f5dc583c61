"""Processing stored events: each room in order, rooms in parallel, effects exactly once.

Workers take pending events and run every handler on each inside one database transaction that
also marks the events processed. Database effects of a handler (audit rows, outbox rows,
activity) therefore commit together with the "processed" mark: a crash before the commit
replays the events, a crash after it never repeats them.

A worker claims whole rooms: everything queued for the rooms it takes (oldest room first, up to
a batch), processed in sequence order, so a room's events are never in two workers at once and
stay in order. Rooms wait for a free worker, never for each other's events; with one database
connection (SQLite) there is one worker, which batches across rooms to spend few transactions.

Events reach the workers in one of two ways. While the pipeline is *tailing*, the intake hands
over what it has just committed (``submit``), so nothing is read back from the database. At
start, after a failed intake, or when more than ``max_backlog`` events wait in memory, it
*catches up* instead: it reads unprocessed events from the database in sequence order, above the
highest sequence number it already holds, until a short page shows it has reached the end. The
intake commits and submits one transaction at a time, so sequence numbers arrive in order and
"above the highest one held" is exactly "not seen yet".

A handler that raises on one event does not stop the room: the batch is retried one event at a
time and the failing event is marked with its error (never its content) and skipped. When the
database itself is unreachable nothing is marked: the batch waits and is retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from mautrix.util.async_db import Connection, Database, Scheme

from bridge.db import storage_unavailable, transaction
from bridge.metrics import Metrics

from .queue import Batch, EventQueue, QueuedEvent
from .sqlite import write_transaction

log = logging.getLogger("practice.pipeline")

# A handler sees each event with the transaction's connection; it may write effects through it.
EventHandler = Callable[[Connection, QueuedEvent], Awaitable[None]]
# A batch handler sees a whole batch at once (every room's events in sequence order), after the
# per-event handlers have seen all of it: a chance to write once per room instead of per event.
BatchHandler = Callable[[Connection, list[QueuedEvent]], Awaitable[None]]

_FETCH_LIMIT = 2000
_BATCH = 500
_MAX_BACKLOG = 20_000
_RETRY_DELAY = 1.0
_MAX_WORKERS = 8


class _Interrupted(Exception):
    """Cancellation inside a database transaction, raised as an error so that it rolls back."""


class Pipeline:
    def __init__(
        self,
        db: Database,
        queue: EventQueue,
        handlers: list[EventHandler] | None = None,
        *,
        workers: int | None = None,
        max_backlog: int = _MAX_BACKLOG,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.handlers: list[EventHandler] = list(handlers or [])
        self.batch_handlers: list[BatchHandler] = []
        self.workers = workers or _default_workers(db)
        self.max_backlog = max_backlog
        self._rooms: dict[str, deque[QueuedEvent]] = {}  # queued, not yet taken by a worker
        self._ready: dict[str, None] = {}  # rooms with queued events and no worker, oldest first
        self._claimed: set[str] = set()  # rooms a worker is processing
        self._work = asyncio.Event()
        self._backlog = 0  # events held in memory: queued or being processed
        self._high_seq = 0  # the highest sequence number handed to a room
        self._tailing = False
        self._missed = 0  # submissions left to the database while catching up
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self.processed = 0
        self.metrics = metrics or Metrics()
        # Events in batches held back because the database cannot be written.
        self.waiting_for_storage = 0

    def add_handler(self, handler: EventHandler) -> None:
        self.handlers.append(handler)

    def add_batch_handler(self, handler: BatchHandler) -> None:
        self.batch_handlers.append(handler)

    def start(self) -> None:
        if self._tasks:
            return
        self._stopped = False
        self._tailing = False
        self._tasks.append(asyncio.create_task(self._load_loop(), name="pipeline-loader"))
        for n in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"pipeline-worker-{n}"))
        self.notify()

    async def stop(self) -> None:
        """Stop processing; an interrupted batch rolls back and is processed after a restart."""
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._rooms.clear()
        self._ready.clear()
        self._claimed.clear()
        self._backlog = 0
        self._high_seq = 0
        self._tailing = False

    def submit(self, events: list[QueuedEvent]) -> None:
        """Events the intake has just committed, in sequence order: process them."""
        if not events or self._stopped:
            return
        if self._tailing and self._backlog + len(events) <= self.max_backlog:
            self._enqueue(events)
        else:
            self.notify()

    def notify(self) -> None:
        """Stored events may be unknown to the pipeline: read them from the database."""
        self._tailing = False
        self._missed += 1
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self, timeout: float = 30) -> None:
        """Wait until every stored event has been processed (for tests and benchmarks)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    @property
    def backlog(self) -> int:
        return self._backlog

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._stopped

    def _enqueue(self, events: Iterable[QueuedEvent]) -> None:
        for ev in events:
            if ev.seq <= self._high_seq:
                continue  # Already held (read back while its submission was on its way).
            self._high_seq = ev.seq
            self._backlog += 1
            room = self._rooms.get(ev.room_id)
            if room is None:
                room = self._rooms[ev.room_id] = deque()
            room.append(ev)
            if ev.room_id not in self._claimed:
                self._ready.setdefault(ev.room_id)
        if self._ready:
            self._idle.clear()
            self._work.set()

    def _check_idle(self) -> None:
        if self._tailing and not self._backlog:
            self._idle.set()

    async def _load_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("Loading pending events failed (%s); retrying", type(e).__name__)
                await asyncio.sleep(_RETRY_DELAY)
                self._wake.set()
            self._check_idle()

    async def _catch_up(self) -> None:
        while not self._tailing:
            room = self.max_backlog - self._backlog
            if room <= 0:
                return  # A worker wakes the loader when it has worked some of it off.
            limit = min(_FETCH_LIMIT, room)
            missed = self._missed
            pending = await self.queue.pending(limit, after_seq=self._high_seq)
            self._enqueue(pending)
            if len(pending) < limit and self._missed == missed:
                # Reached the end, and nothing was committed and left to us meanwhile: from
                # now on the intake's submissions are complete.
                self._tailing = True

    def _take(self) -> tuple[list[str], list[QueuedEvent]]:
        """Claim the oldest ready rooms, up to a batch of events; their events in order."""
        rooms: list[str] = []
        batch = Batch()
        while self._ready and len(batch) < _BATCH:
            room_id = next(iter(self._ready))
            del self._ready[room_id]
            self._claimed.add(room_id)
            rooms.append(room_id)
            queued = self._rooms[room_id]
            while queued and len(batch) < _BATCH:
                batch.append(queued.popleft())
            if not queued:
                del self._rooms[room_id]
        if len(rooms) > 1:
            batch.sort(key=lambda ev: ev.seq)
        return rooms, batch

    async def _worker(self) -> None:
        while True:
            rooms, batch = self._take()
            if not batch:
                self._work.clear()
                self._check_idle()
                await self._work.wait()
                continue
            try:
                await self._process(batch)
            finally:
                self._backlog -= len(batch)
                for room_id in rooms:
                    self._claimed.discard(room_id)
                    if room_id in self._rooms:
                        self._ready.setdefault(room_id)
                        self._work.set()
            if not self._tailing:
                self._wake.set()

    async def _process(self, batch: list[QueuedEvent]) -> None:
        waiting = 0  # this batch's share of waiting_for_storage
        try:
            while True:
                try:
                    await self._run_handlers(batch)
                    self.processed += len(batch)
                    self.metrics.events_processed(ev.payload for ev in batch)
                    return
                except Exception as e:
                    if _unreachable(e):
                        log.warning("The database failed (%s); retrying", type(e).__name__)
                        self.waiting_for_storage += len(batch) - waiting
                        waiting = len(batch)
                        await asyncio.sleep(_RETRY_DELAY)
                        continue
                    self.waiting_for_storage -= waiting
                    waiting = 0
                    if len(batch) > 1:
                        for ev in batch:
                            await self._process([ev])
                        return
                    if await self._mark_failed(batch[0], e):
                        return
                    await asyncio.sleep(_RETRY_DELAY)
        finally:
            self.waiting_for_storage -= waiting

    async def _run_handlers(self, batch: list[QueuedEvent]) -> None:
        if isinstance(batch, Batch):
            batch.memo.clear()  # Derived in an attempt that rolled back: derive it again.
        try:
            async with write_transaction(self.db) as conn:
                try:
                    for ev in batch:
                        for handler in self.handlers:
                            await handler(conn, ev)
                    for batch_handler in self.batch_handlers:
                        await batch_handler(conn, batch)
                    await self.queue.mark_processed(conn, [ev.seq for ev in batch])
                except asyncio.CancelledError as e:
                    raise _Interrupted from e
        except _Interrupted:
            raise asyncio.CancelledError from None

    async def _mark_failed(self, ev: QueuedEvent, error: Exception) -> bool:
        # The type only: an exception's text could quote a message body.
        log.error(
            "Event %s in %s failed (%s); skipped", ev.event_id, ev.room_id, type(error).__name__
        )
        try:
            async with transaction(self.db) as conn:
                await self.queue.mark_processed(
                    conn, [ev.seq], outcome=f"failed:{type(error).__name__}"
                )
            self.processed += 1
            self.metrics.events_processed([ev.payload], "failed")
            return True
        except Exception:
            log.exception("Could not record the failure of %s", ev.event_id)
            return False


def _unreachable(error: BaseException) -> bool:
    """Whether the database could not be used (then no event is to blame): unreachable,
    restarting, full or read-only."""
    return storage_unavailable(error)


def _default_workers(db: Database) -> int:
    """One worker per connection the pool can spare for it, one for SQLite's only one."""
    if db.scheme == Scheme.SQLITE:
        return 1
    size = getattr(db, "_db_args", {}).get("max_size", 10)
    return max(1, min(_MAX_WORKERS, int(size) - 1))
