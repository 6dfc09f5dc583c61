"""Processing stored events: each room in order, rooms in parallel, effects exactly once.

A room's worker takes that room's pending events in sequence order and runs every handler on
each inside one database transaction that also marks the events processed. Database effects of
a handler (audit rows, outbox rows, activity) therefore commit together with the "processed"
mark: a crash before the commit replays the events, a crash after it never repeats them.

A handler that raises on one event does not stop the room: the batch is retried one event at a
time and the failing event is marked with its error (never its content) and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mautrix.util.async_db import Connection, Database

from bridge.db import transaction

from .queue import EventQueue, QueuedEvent

log = logging.getLogger("practice.pipeline")

# A handler sees each event with the transaction's connection; it may write effects through it.
EventHandler = Callable[[Connection, QueuedEvent], Awaitable[None]]

_FETCH_LIMIT = 2000
_ROOM_BATCH = 200


class Pipeline:
    def __init__(
        self, db: Database, queue: EventQueue, handlers: list[EventHandler] | None = None
    ) -> None:
        self.db = db
        self.queue = queue
        self.handlers: list[EventHandler] = list(handlers or [])
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._rooms: dict[str, list[QueuedEvent]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._loader: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.processed = 0

    def add_handler(self, handler: EventHandler) -> None:
        self.handlers.append(handler)

    def start(self) -> None:
        if self._loader is None:
            self._loader = asyncio.create_task(self._load_loop(), name="pipeline-loader")
            self.notify()

    async def stop(self) -> None:
        tasks = [t for t in (self._loader, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loader = None
        self._workers.clear()
        self._rooms.clear()
        self._in_flight.clear()

    def notify(self) -> None:
        """New events were stored (or a room finished): look for work."""
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self, timeout: float = 30) -> None:
        """Wait until every stored event has been processed (for tests and benchmarks)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _load_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._load()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Loading pending events failed; retrying")
                await asyncio.sleep(1)
                self._wake.set()

    async def _load(self) -> None:
        pending = await self.queue.pending(_FETCH_LIMIT)
        fresh = [ev for ev in pending if ev.seq not in self._in_flight]
        for ev in fresh:
            self._in_flight.add(ev.seq)
            self._rooms.setdefault(ev.room_id, []).append(ev)
            if ev.room_id not in self._workers:
                self._workers[ev.room_id] = asyncio.create_task(
                    self._room_worker(ev.room_id), name=f"pipeline-room-{ev.room_id}"
                )
        if not pending and not self._workers:
            self._idle.set()

    async def _room_worker(self, room_id: str) -> None:
        try:
            while self._rooms.get(room_id):
                batch = self._rooms[room_id][:_ROOM_BATCH]
                del self._rooms[room_id][:_ROOM_BATCH]
                await self._process(batch)
                for ev in batch:
                    self._in_flight.discard(ev.seq)
        finally:
            self._rooms.pop(room_id, None)
            self._workers.pop(room_id, None)
            self.notify()

    async def _process(self, batch: list[QueuedEvent]) -> None:
        while True:
            try:
                async with transaction(self.db) as conn:
                    for ev in batch:
                        for handler in self.handlers:
                            await handler(conn, ev)
                    await self.queue.mark_processed(conn, [(ev.seq, "ok") for ev in batch])
                self.processed += len(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if len(batch) > 1:
                    for ev in batch:
                        await self._process([ev])
                    return
                if not await self._mark_failed(batch[0], e):
                    await asyncio.sleep(1)  # The database itself failed: retry the event.
                    continue
                return

    async def _mark_failed(self, ev: QueuedEvent, error: Exception) -> bool:
        # The type only: an exception's text could quote a message body.
        log.error(
            "Event %s in %s failed (%s); skipped", ev.event_id, ev.room_id, type(error).__name__
        )
        try:
            async with transaction(self.db) as conn:
                await self.queue.mark_processed(conn, [(ev.seq, f"failed:{type(error).__name__}")])
            self.processed += 1
            return True
        except Exception:
            log.exception("Could not record the failure of %s", ev.event_id)
            return False
