"""The metrics after a known workload: each counter moved by exactly what the test did.

Everything is real: the bridge serves ``/metrics`` on its own port and is scraped over HTTP;
Synapse's endpoint is scraped for the module's refusals; email goes to aiosmtpd. The
notification worker is driven by hand with the test's clock (as in test_notifications), so
"after the delay" needs no waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.util.async_db import Database
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import Bridge
from registration.homeserver import free_port
from tests import test_notifications
from tests.clients import ApiClient, HomeserverInfo, eventually
from tests.test_faults import _made_up_events, _transaction
from tests.test_notifications import (
    Clock,
    SmtpServer,
    _after_delay,
    _mail_config,
    _send,
    _setup,
    _start,
)
from tests.test_openapi import contract

C = contract()
# The notification tests' fixtures: a real mail server, and the worker's clock.
smtp = test_notifications.smtp
clock = test_notifications.clock


class Scrape:
    """One scrape of a Prometheus endpoint: every sample, found by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    @classmethod
    async def of(cls, url: str) -> Scrape:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200, resp.status
            return cls(await resp.text())

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            value
            for found, have, value in self.samples
            if found == name and labels.items() <= have.items()
        )

    def moved(self, before: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)


@pytest.fixture
async def bridge(
    homeserver: HomeserverInfo, database: Database, tmp_path: Path, smtp: SmtpServer, clock: Clock
) -> AsyncIterator[Bridge]:
    """A bridge with email on and its metrics served on a free port (the API fixture uses it)."""
    config = _mail_config(homeserver, tmp_path, smtp.port)
    config.metrics.enabled = True
    config.metrics.listen_port = free_port()
    instance = await _start(config, database, clock)
    # Every scrape and probe reads afresh: the test checks what it just did.
    assert instance.metrics_server is not None
    instance.metrics_server.sampler.max_age = 0
    instance.health.max_age = 0
    try:
        yield instance
    finally:
        await instance.stop()


def _url(bridge: Bridge) -> str:
    return f"http://127.0.0.1:{bridge.config.metrics.listen_port}/metrics"


class _Poison:
    """A pipeline handler that fails on messages saying "poison" (a bug in a handler)."""

    async def __call__(self, conn: Any, ev: Any) -> None:
        if ev.payload.get("content", {}).get("body") == "poison":
            raise RuntimeError("a handler bug")


async def test_counters_move_by_what_was_done(
    api: ApiClient,
    bridge: Bridge,
    homeserver: HomeserverInfo,
    smtp: SmtpServer,
    clock: Clock,
) -> None:
    practice_id = f"p{uuid.uuid4().hex[:10]}"
    staff, clients, rooms = await _setup(api, practice_id)
    client, room = clients["c1"], rooms["c1"]
    await bridge.pipeline.wait_idle()
    url = _url(bridge)
    before = await Scrape.of(url)
    assert before.value("practice_bridge_health_check", check="database") == 1
    assert before.value("process_resident_memory_bytes") > 0

    # Two messages: processed, stored by the intake, one outbox row each for the practitioner.
    await _send(bridge, client, room, "Can we move my appointment?")
    await _send(bridge, client, room, "Tuesday would suit me.")
    now = await Scrape.of(url)
    assert now.moved(before, "practice_bridge_pipeline_events_total", kind="message") == 2
    assert now.moved(before, "practice_bridge_intake_events_total", outcome="new") >= 2
    assert now.moved(before, "practice_bridge_intake_transactions_total", outcome="stored") >= 1
    assert now.moved(before, "practice_bridge_intake_lag_seconds_count") >= 1
    assert now.value("practice_bridge_intake_last_transaction_timestamp_seconds") > 0
    assert now.value("practice_bridge_outbox_pending_rows") == 2
    assert now.value("practice_bridge_outbox_overdue_seconds") == 0  # not due yet

    # After the delay: one email for both; then a refused recipient, a permanent failure.
    assert await _after_delay(bridge, clock) == 1
    smtp.mailbox.refuse_rcpt = "550 5.1.1 No such mailbox"
    await _send(bridge, client, room, "Are you there?")
    assert await _after_delay(bridge, clock) == 0
    mailed = await Scrape.of(url)
    assert mailed.moved(before, "practice_bridge_emails_total", outcome="sent") == 1
    assert mailed.moved(before, "practice_bridge_emails_total", outcome="failed") == 1
    assert mailed.moved(before, "practice_bridge_emails_total", outcome="retry") == 0
    assert mailed.value("practice_bridge_outbox_pending_rows") == 0

    # A handler fails on one event: it is skipped and counted as failed.
    bridge.pipeline.handlers.insert(0, _Poison())
    await _send(bridge, client, room, "poison")
    failed = await Scrape.of(url)
    assert failed.moved(mailed, "practice_bridge_pipeline_events_total", outcome="failed") == 1
    assert failed.moved(mailed, "practice_bridge_pipeline_events_total", outcome="ok") == 0

    # The pipeline stopped: what arrives waits as pending, and the health check says so.
    await bridge.pipeline.stop()
    held = await client.send(room, {"msgtype": "m.text", "body": "While the pipeline stops"})
    assert held.status == 200, held.body

    async def pending() -> Scrape | None:
        scrape = await Scrape.of(url)
        return scrape if scrape.value("practice_bridge_pipeline_backlog_events") == 1 else None

    waiting = await eventually(pending)
    assert waiting.value("practice_bridge_pipeline_backlog_events", state="pending") == 1
    assert waiting.value("practice_bridge_pipeline_lag_seconds") >= 0
    assert waiting.value("practice_bridge_health_check", check="pipeline") == 0
    probe = await api.call("GET", "/health", auth=False)
    assert probe.status == 503 and probe.errcode == "ORG.PRACTICEBRIDGE.UNHEALTHY", probe
    assert probe.body["checks"]["pipeline"] == {"ok": False, "reason": "not running"}
    C.check("GET", "/health", probe)
    bridge.pipeline.start()
    await bridge.pipeline.wait_idle()
    probe = await api.call("GET", "/health", auth=False)
    assert probe.status == 200 and probe.body["status"] == "healthy", probe
    C.check("GET", "/health", probe)
    drained = await Scrape.of(url)
    assert drained.value("practice_bridge_pipeline_backlog_events", state="pending") == 0
    assert drained.value("practice_bridge_health_check", check="pipeline") == 1

    # The API: counted by method, route template and status; no id in any label.
    calls = await Scrape.of(url)
    assert (await api.call("GET", "/chats", token=staff.token)).status == 200
    assert (await api.call("GET", "/chats", token=staff.token)).status == 200
    assert (await api.call("GET", "/chats?filter=bogus", token=staff.token)).status == 400
    assert (await api.call("PUT", f"/chats/{quote(room)}/pin", token=staff.token)).status == 200
    assert (await api.call("GET", f"/nothing/{practice_id}")).status == 404
    api_done = await Scrape.of(url)
    requests = "practice_bridge_api_requests_total"
    assert api_done.moved(calls, requests, method="GET", route="/chats", status="200") == 2
    assert api_done.moved(calls, requests, method="GET", route="/chats", status="400") == 1
    pin = {"method": "PUT", "route": "/chats/{chat_id}/pin", "status": "200"}
    assert api_done.moved(calls, requests, **pin) == 1
    assert api_done.moved(calls, requests, route="unmatched", status="404") == 1
    latency = "practice_bridge_api_request_duration_seconds_count"
    assert api_done.moved(calls, latency, method="GET", route="/chats") == 3
    for secret in (room, practice_id, staff.user_id, client.user_id, "@", "example.com"):
        assert secret not in api_done.text

    # A bot command, counted once it ran.
    await _send(bridge, staff, room, "!pb help")

    async def command_ran() -> bool:
        scrape = await Scrape.of(url)
        ran = scrape.moved(before, "practice_bridge_bot_commands_total", command="help")
        return (
            ran == 1
            and scrape.value("practice_bridge_bot_commands_total", command="help", outcome="ok")
            == 1
        )

    await eventually(command_ran)


async def test_a_person_using_the_list_is_followed_and_lists_wait_on_no_sync(
    api: ApiClient, bridge: Bridge
) -> None:
    """The first list of a person catches up with Synapse; from then on their flags are
    followed live, so the next lists are made from the mirror alone, and a flag set in another
    Matrix app still shows on them."""
    practice_id = f"p{uuid.uuid4().hex[:10]}"
    staff, _, rooms = await _setup(api, practice_id)
    room = rooms["c1"]
    url = _url(bridge)
    lists = "practice_bridge_chat_lists_total"
    before = await Scrape.of(url)
    assert (await api.call("GET", "/chats", token=staff.token)).status == 200
    first = await Scrape.of(url)
    assert first.moved(before, lists, source="synced") == 1
    assert first.moved(before, lists, source="followed") == 0
    assert first.value("practice_bridge_followed_users") >= 1

    # Pinned in another app, with the person's own token: the next lists show it.
    me = quote(staff.user_id)
    r = await staff.request(
        "PUT",
        f"/_matrix/client/v3/user/{me}/rooms/{quote(room)}/tags/m.favourite",
        {"order": 0.5},
    )
    assert r.status == 200, r.body

    async def pinned() -> bool:
        r = await api.call("GET", "/chats", token=staff.token)
        return bool(r.body["chats"][0]["pinned"])

    assert await eventually(pinned)
    for _ in range(3):
        assert (await api.call("GET", "/chats", token=staff.token)).status == 200
    after = await Scrape.of(url)
    assert after.moved(first, lists, source="synced") == 0
    assert after.moved(first, lists, source="followed") >= 4


async def test_module_refusals_are_counted_on_synapses_endpoint(
    api: ApiClient, bridge: Bridge, homeserver: HomeserverInfo
) -> None:
    """The rules module counts what it refuses, by errcode, in Synapse's own registry."""
    practice_id = f"p{uuid.uuid4().hex[:10]}"
    staff, clients, rooms = await _setup(api, practice_id)
    client, room = clients["c1"], rooms["c1"]
    url = f"{homeserver.url}/_synapse/metrics"
    refusals = "practice_bridge_module_refusals_total"
    before = await Scrape.of(url)
    for _ in range(2):
        invite = await client.request(
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room)}/invite",
            {"user_id": staff.user_id},
        )
        assert (invite.status, invite.errcode) == (403, "M_FORBIDDEN"), invite.body
    # The practitioner's message passes the module untouched: nothing counted.
    await _send(bridge, staff, room, "See you on Tuesday.")
    after = await Scrape.of(url)
    assert after.moved(before, refusals, errcode="M_FORBIDDEN") == 2
    assert after.moved(before, refusals) == 2


async def test_redelivered_events_are_counted_as_duplicates(bridge: Bridge) -> None:
    """Synapse sends a transaction again (it did not hear the answer): the events are stored
    and processed once, and the second delivery counts as duplicates."""
    url = _url(bridge)
    events = _made_up_events(3, 10)
    before = await Scrape.of(url)
    for _ in range(2):
        delivered = await _transaction(bridge, events)
        assert delivered.status == 200, delivered.body
    await bridge.pipeline.wait_idle()
    after = await Scrape.of(url)
    assert after.moved(before, "practice_bridge_intake_events_total", outcome="duplicate") == 3
    assert after.moved(before, "practice_bridge_intake_transactions_total", outcome="stored") >= 2
    assert after.moved(before, "practice_bridge_pipeline_events_total", kind="other") == 3
