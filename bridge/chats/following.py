"""Following the users who are using their chat list, so a list never waits on Synapse.

While a person uses the portal, the bridge keeps one long-polling ``/sync`` open as them (account
data and receipts only, no timelines), as any Matrix app does while it is open: Synapse answers
it as soon as a flag or a read changes, in any app, and the answer goes into the mirror at once.
A list of a person being followed is then made from the mirror alone.

A person is followed from their first list until ``idle_s`` after their last one, at most
``most`` people at once (the longest idle is let go first). When a poll fails (Synapse down or
restarting), the person is not followed live until a poll answers again: meanwhile their lists
catch up with a sync of their own first, as a list of someone not followed does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mautrix.errors import MatrixRequestError
from mautrix.types import UserID

log = logging.getLogger("practice.following")

FOLLOW_IDLE_S = 600.0  # let a person go this long after their last list
FOLLOW_MOST = 500  # people followed at once; each is one open request to Synapse
POLL_WAIT_MS = 30_000  # how long one poll waits for a change before it is asked again
RETRY_MAX_S = 30.0  # after failed polls, the longest wait before the next


# (user, wait_ms) -> True once the answer is in the mirror (False: asked again at once)
Poll = Callable[[UserID, int], Awaitable[bool]]


@dataclass
class _Followed:
    last_list: float
    live: bool = True  # the mirror is current, and a poll is waiting for the next change
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class Following:
    poll: Poll
    idle_s: float = FOLLOW_IDLE_S
    most: int = FOLLOW_MOST
    wait_ms: int = POLL_WAIT_MS
    _people: dict[str, _Followed] = field(default_factory=dict, init=False)

    def live(self, user_id: UserID) -> bool:
        """True if the user's mirror is current (they are followed and the last poll answered);
        counts as their use of the list."""
        followed = self._people.get(user_id)
        if followed is None:
            return False
        followed.last_list = time.monotonic()
        return followed.live

    def follow(self, user_id: UserID) -> None:
        """Start following the user (their mirror has just been brought up to date)."""
        followed = self._people.get(user_id)
        if followed is not None:
            followed.last_list = time.monotonic()
            return
        while len(self._people) >= self.most:
            self._let_go(min(self._people, key=lambda u: self._people[u].last_list))
        followed = self._people[user_id] = _Followed(time.monotonic())
        followed.task = asyncio.create_task(self._run(user_id, followed))

    def __len__(self) -> int:
        return len(self._people)

    async def stop(self) -> None:
        tasks = [f.task for f in self._people.values() if f.task is not None]
        self._people.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _let_go(self, user_id: str) -> None:
        followed = self._people.pop(user_id, None)
        if followed is not None and followed.task is not None:
            followed.task.cancel()

    async def _run(self, user_id: UserID, followed: _Followed) -> None:
        failures = 0
        try:
            while time.monotonic() - followed.last_list < self.idle_s:
                try:
                    if not await self.poll(user_id, self.wait_ms):
                        continue  # changed through the API meanwhile: asked again at once
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    followed.live = False
                    if isinstance(e, MatrixRequestError) and 400 <= e.http_status < 500:
                        log.info("Following %s: refused (%s)", user_id, e.errcode)
                        return  # Synapse will not sync as them (any more)
                    failures += 1
                    log.warning("Following %s: poll failed (%s)", user_id, type(e).__name__)
                    await asyncio.sleep(min(RETRY_MAX_S, 0.5 * 2**failures))
                    continue
                failures = 0
                followed.live = True
        finally:
            if self._people.get(user_id) is followed:
                del self._people[user_id]
