"""A background loop: runs its work when woken (and every ``poll`` seconds, if given), and after a
failure waits a little and tries again. The workers that act after a commit build on it
(``LoopWorker``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any


class BackgroundLoop:
    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[Any]],
        log: logging.Logger,
        *,
        poll: float | None = None,
        retry: float = 5.0,
    ) -> None:
        self.name = name
        self.work = work
        self.log = log
        self.poll = poll
        self.retry = retry
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)
            self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def notify(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if self.poll is None:
                await self._wake.wait()
            else:
                try:
                    # Not wait_for: on 3.11 it can lose a cancellation that meets a wake-up.
                    async with asyncio.timeout(self.poll):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            try:
                await self.work()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("%s failed; retrying in %.0f s", self.name, self.retry)
                await asyncio.sleep(self.retry)
                self._wake.set()


class LoopWorker:
    """A component whose work runs in a background loop of its own: the process starts and
    stops it, and whoever commits work for it wakes it with ``notify``."""

    def __init__(self, loop: BackgroundLoop) -> None:
        self._loop = loop

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def notify(self) -> None:
        self._loop.notify()
