"""What the bridge tells Prometheus (docs/admin.md#metrics-and-alerts).

One :class:`Metrics` per bridge process, in a registry of its own (no process-wide state: a
test can run two bridges side by side). Components count what they do as they do it: the
intake, the pipeline, the notification worker, the bot commands, the provisioning API. What the
database knows (how many events wait, how overdue the oldest email is) is read when Prometheus
scrapes, by :class:`Sampler`, a few cheap indexed queries at most every ``max_age`` seconds.

Label values come from small fixed sets (an outcome, a kind of event, a command name, a route's
template, an HTTP status): never an id, an address or anything a person wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from bridge.events import EventQueue, Pipeline
    from bridge.health import Health
    from bridge.notifications import OutboxStore

_NS = "practice_bridge"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def event_kind(payload: dict[str, Any]) -> str:
    """A label for an event: message, state, ephemeral (receipts, typing) or other."""
    if payload.get("_edu"):
        return "ephemeral"
    if "state_key" in payload:
        return "state"
    return "message" if payload.get("type") == "m.room.message" else "other"


class Metrics:
    """Every metric of one bridge process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        counter, gauge, histogram = self._counter, self._gauge, self._histogram
        # -- intake: what Synapse delivers -----------------------------------------------------
        self.transactions = counter(
            "intake_transactions",
            "Transactions from Synapse: stored (acknowledged) or refused (storing failed; "
            "Synapse sends them again).",
            "outcome",
        )
        self.intake_events = counter(
            "intake_events",
            "Events stored by the intake: new ones, and redeliveries dropped as duplicates.",
            "outcome",
        )
        self.intake_lag = histogram(
            "intake_lag_seconds",
            "How old the newest event of a transaction is when the bridge has stored it "
            "(from its origin_server_ts): how far the intake is behind Synapse.",
            _LAG_BUCKETS,
        )
        self.intake_last_lag = gauge(
            "intake_last_lag_seconds",
            "intake_lag_seconds of the last transaction that carried room events.",
        )
        self.intake_last_transaction = gauge(
            "intake_last_transaction_timestamp_seconds",
            "When the last transaction from Synapse was stored (Unix time).",
        )
        # -- the event pipeline ----------------------------------------------------------------
        self.processed = counter(
            "pipeline_events",
            "Events the pipeline finished: ok, or failed (a handler raised; the event was "
            "skipped and marked with the error's type).",
            "outcome",
            "kind",
        )
        self.backlog = gauge(
            "pipeline_backlog_events",
            "Events waiting: pending (stored, not yet processed) and waiting_for_storage (in a "
            "batch held back because the database cannot be written).",
            "state",
        )
        self.pipeline_lag = gauge(
            "pipeline_lag_seconds",
            "How long the oldest pending event has waited since it was stored (0: none).",
        )
        # -- notifications ---------------------------------------------------------------------
        self.emails = counter(
            "emails",
            "Notification emails handed to the mail server: sent, retry (a transient failure; "
            "tried again later) or failed (refused for good, or too many attempts).",
            "outcome",
        )
        self.outbox = gauge(
            "outbox_pending_rows",
            "Messages waiting in the notification outbox (each for one recipient).",
        )
        self.outbox_overdue = gauge(
            "outbox_overdue_seconds",
            "How long past its due time the oldest pending outbox row is (0: none is due).",
        )
        # -- bot commands, the provisioning API, health ----------------------------------------
        self.commands = counter(
            "bot_commands",
            "Bot commands run, by command and outcome (ok, refused, ignored, failed).",
            "command",
            "outcome",
        )
        self.api_requests = counter(
            "api_requests",
            "Provisioning API requests by method, route template and HTTP status.",
            "method",
            "route",
            "status",
        )
        self.api_latency = histogram(
            "api_request_duration_seconds",
            "Provisioning API response time by method and route template (a streamed export "
            "until its last byte).",
            _LATENCY_BUCKETS,
            "method",
            "route",
        )
        self.chat_lists = counter(
            "chat_lists",
            "Chat lists started (a first page), by where the person's flags came from: "
            "followed (the mirror, kept current by their open sync) or synced (waited for a "
            "sync of their own first: the first list, or after the person was let go).",
            "source",
        )
        self.followed_users = gauge(
            "followed_users",
            "People whose chat flags the bridge follows live (one open sync to Synapse each).",
        )
        self.health = gauge(
            "health_check", "Each check of the health endpoint: 1 passing, 0 failing.", "check"
        )

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(f"{_NS}_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(f"{_NS}_{name}", doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], *labels: str
    ) -> Histogram:
        return Histogram(f"{_NS}_{name}", doc, labels, registry=self.registry, buckets=buckets)

    # -- what components report ------------------------------------------------------------------

    def events_processed(self, payloads: Iterable[dict[str, Any]], outcome: str = "ok") -> None:
        for kind, count in Tally(event_kind(p) for p in payloads).items():
            self.processed.labels(outcome, kind).inc(count)

    def transaction_stored(self, new: int, duplicates: int, newest_ts_ms: int | None) -> None:
        now = time.time()
        self.transactions.labels("stored").inc()
        self.intake_events.labels("new").inc(new)
        self.intake_events.labels("duplicate").inc(duplicates)
        self.intake_last_transaction.set(now)
        if newest_ts_ms is not None:
            lag = max(0.0, now - newest_ts_ms / 1000)
            self.intake_lag.observe(lag)
            self.intake_last_lag.set(lag)


@dataclass(eq=False)
class Sampler:
    """Brings the gauges that come from the database (and the health checks) up to date before
    a scrape; at most once every ``max_age`` seconds, however many scrapers ask."""

    metrics: Metrics
    queue: EventQueue
    pipeline: Pipeline
    outbox: OutboxStore
    health: Health
    max_age: float = field(default=2.0, kw_only=True)

    def __post_init__(self) -> None:
        self._at = -self.max_age
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._at < self.max_age:
                return
            m = self.metrics
            for check in await self.health.checks():
                m.health.labels(check.name).set(1 if check.ok else 0)
            m.backlog.labels("waiting_for_storage").set(self.pipeline.waiting_for_storage)
            try:
                events, oldest = await self.queue.backlog()
                rows, first_due = await self.outbox.backlog()
            except Exception:
                # The database is down: the health check says so; these keep their last value.
                self._at = time.monotonic()
                return
            now_ms = time.time() * 1000
            m.backlog.labels("pending").set(events)
            m.pipeline_lag.set(max(0.0, (now_ms - oldest) / 1000) if oldest is not None else 0)
            m.outbox.set(rows)
            overdue = (now_ms - first_due) / 1000 if first_due is not None else 0
            m.outbox_overdue.set(max(0.0, overdue))
            self._at = time.monotonic()
