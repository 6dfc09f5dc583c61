"""Whether this bridge process can do its work: what a load balancer probes
(``GET {prefix}/health``, docs/admin.md#health) and what the metrics report as
``practice_bridge_health_check``.

Three checks, each answering ok or a short reason (never an address, a secret or an error's
text, which could quote either):

- ``database``: the bridge's database answers a trivial query;
- ``synapse``: the homeserver's client API answers;
- ``pipeline``: the event pipeline runs, and no stored event has waited longer than
  ``stuck_after`` seconds for it (one indexed lookup of the oldest pending event).

Results are kept for ``max_age`` seconds and concurrent probes share one round, so probing as
often as a load balancer likes costs at most those three small calls per ``max_age``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from mautrix.util.async_db import Database

from bridge.clock import now_ms
from bridge.events import EventQueue, Pipeline

STUCK_AFTER_SECONDS = 300.0
_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str


@dataclass(eq=False)
class Health:
    db: Database
    queue: EventQueue
    pipeline: Pipeline
    homeserver_answers: Callable[[], Awaitable[None]]
    _: KW_ONLY
    stuck_after: float = STUCK_AFTER_SECONDS
    max_age: float = 2.0
    _last: list[Check] = field(default_factory=list, init=False)
    _at: float = field(default=0.0, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def checks(self) -> list[Check]:
        """The result of each check, at most ``max_age`` seconds old."""
        async with self._lock:
            if self._last and time.monotonic() - self._at < self.max_age:
                return self._last
            self._last = list(
                await asyncio.gather(
                    _run("database", self._database),
                    _run("synapse", self.homeserver_answers),
                    _run("pipeline", self._pipeline),
                )
            )
            self._at = time.monotonic()
            return self._last

    async def _database(self) -> None:
        await self.db.fetchval("SELECT 1")

    async def _pipeline(self) -> str | None:
        if not self.pipeline.running:
            raise _Failing("not running")
        try:
            oldest = await self.queue.oldest_pending()
        except Exception as e:
            raise _Failing(f"the event queue cannot be read ({type(e).__name__})") from None
        if oldest is None:
            return "nothing pending"
        waited = max(0.0, (now_ms() - oldest) / 1000)
        if waited > self.stuck_after:
            raise _Failing(f"stuck: the oldest pending event has waited {waited:.0f} s")
        return f"the oldest pending event has waited {waited:.0f} s"


class _Failing(Exception):
    """A check's own verdict, with the reason to show."""


async def _run(name: str, probe: Callable[[], Awaitable[str | None]]) -> Check:
    try:
        reason = await asyncio.wait_for(probe(), _TIMEOUT_SECONDS)
    except _Failing as e:
        return Check(name, False, str(e))
    except TimeoutError:
        return Check(name, False, f"no answer within {_TIMEOUT_SECONDS:.0f} s")
    except Exception as e:
        # The type only: an error's text can hold an address, a query or a credential.
        return Check(name, False, f"unreachable ({type(e).__name__})")
    return Check(name, True, reason or "ok")
