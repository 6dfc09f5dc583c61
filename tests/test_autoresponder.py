"""The autoresponder: in 1:1 client chats only, in its schedule, once per half hour, once ever
per message even across redelivery and a crash between sending and recording."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from mautrix.util.async_db import Database

from bridge.app import Bridge
from bridge.autoresponder import in_schedule
from tests.clients import ApiClient, HomeserverInfo, MatrixClient, processed
from tests.conftest import bridge_config

AWAY = "I am away until Monday; for emergencies call 112."


async def _setup(
    api: ApiClient, practice_id: str, periods: list[dict[str, str]] | None = None
) -> tuple[MatrixClient, MatrixClient, str]:
    staff, client = await api.staff_and_client(practice_id, clients=("c1", "c2"))
    auto = {"enabled": True, "message": AWAY, "periods": periods or []}
    r = await api.call("PUT", "/settings", {"autoresponder": auto}, token=staff.token)
    assert r.status == 200, r.body
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    return staff, client, r.body["chat_id"]


async def _replies(who: MatrixClient, room: str) -> list[dict[str, Any]]:
    r = await who.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room)}/messages",
        params={"dir": "b", "limit": "100"},
    )
    return [e for e in r.body["chunk"] if "org.practicebridge.auto_reply" in e["content"]]


async def _send_and_settle(bridge: Bridge, client: MatrixClient, room: str, body: str) -> str:
    sent = await client.send(room, {"msgtype": "m.text", "body": body})
    assert sent.status == 200, sent.body
    event_id = str(sent.body["event_id"])
    await processed(bridge.db, event_id)
    await bridge.autoresponses.send_due()
    return event_id


async def test_reply_as_the_practitioner_once_per_half_hour(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    staff, client, room = await _setup(api, practice_id)
    first = await _send_and_settle(bridge, client, room, "Hello?")
    await _send_and_settle(bridge, client, room, "Anyone?")
    (reply,) = await _replies(client, room)
    assert reply["sender"] == staff.user_id
    assert reply["content"]["msgtype"] == "m.notice" and reply["content"]["body"] == AWAY
    assert reply["content"]["org.practicebridge.auto_reply"] == {"in_reply_to_event_id": first}
    # Staff messages and the reply itself never trigger one.
    await _send_and_settle(bridge, staff, room, "I'm here after all")
    assert len(await _replies(client, room)) == 1


async def test_outside_its_periods_there_is_no_reply(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    today = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%a").lower()
    other_day = "mon" if today != "mon" else "tue"
    _, client, room = await _setup(
        api, practice_id, [{"day": other_day, "start": "00:00", "end": "24:00"}]
    )
    await _send_and_settle(bridge, client, room, "Hello?")
    assert await _replies(client, room) == []


async def test_inside_its_period_there_is_a_reply(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    today = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%a").lower()
    _, client, room = await _setup(
        api, practice_id, [{"day": today, "start": "00:00", "end": "24:00"}]
    )
    await _send_and_settle(bridge, client, room, "Hello?")
    assert len(await _replies(client, room)) == 1


def test_schedule_uses_the_practice_time_zone() -> None:
    # Monday 2026-11-30 08:30 UTC is 09:30 in Berlin and 03:30 in New York.
    ts = int(datetime(2026, 11, 30, 8, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    periods = [{"day": "mon", "start": "09:00", "end": "17:00"}]
    assert in_schedule(periods, ts, "Europe/Berlin")
    assert not in_schedule(periods, ts, "America/New_York")
    assert in_schedule([], ts, "America/New_York")
    assert not in_schedule([{"day": "tue", "start": "00:00", "end": "24:00"}], ts, "UTC")


async def test_no_reply_in_group_chats(api: ApiClient, practice_id: str, bridge: Bridge) -> None:
    staff, client, _ = await _setup(api, practice_id)
    r = await api.call(
        "POST", "/chats/group", {"name": "G", "client_ids": ["c1", "c2"]}, token=staff.token
    )
    group = r.body["chat_id"]
    await _send_and_settle(bridge, client, group, "Hello group")
    assert await _replies(client, group) == []


async def test_redelivered_transaction_gives_one_reply(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    _, client, room = await _setup(api, practice_id)
    event_id = await _send_and_settle(bridge, client, room, "Hello?")
    r = await client.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
    )
    event = r.body | {"room_id": room}
    port = bridge.config.appservice.port
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            resp = await http.put(
                f"http://127.0.0.1:{port}/_matrix/app/v1/transactions/{uuid.uuid4().hex}",
                json={"events": [event]},
                headers={"Authorization": f"Bearer {bridge.config.appservice.hs_token}"},
            )
            assert resp.status == 200
    await bridge.pipeline.wait_idle()
    await bridge.autoresponses.send_due()
    assert len(await _replies(client, room)) == 1


async def test_crash_between_send_and_record_gives_one_reply(
    api: ApiClient,
    practice_id: str,
    bridge: Bridge,
    homeserver: HomeserverInfo,
    database_factory: Callable[[], Database],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, client, room = await _setup(api, practice_id)
    await bridge.autoresponses.stop()  # so that this test drives the sender by hand

    async def crash(*_: Any) -> None:
        raise SystemExit("the bridge died before recording the reply")

    monkeypatch.setattr(bridge.autoresponses, "mark_sent", crash)
    sent = await client.send(room, {"msgtype": "m.text", "body": "Hello?"})
    await processed(bridge.db, sent.body["event_id"])
    try:
        await bridge.autoresponses.send_due()
        raise AssertionError("the crash did not happen")
    except SystemExit:
        pass
    assert len(await _replies(client, room)) == 1  # sent, but not recorded
    await bridge.stop()

    (tmp_path / "again").mkdir()
    restarted = Bridge(bridge_config(homeserver, tmp_path / "again"), db=database_factory())
    await restarted.start()
    try:
        job = await restarted.db.fetchrow("SELECT attempts, sent_event_id FROM autoresponse_job")
        assert job["attempts"] == 1 and job["sent_event_id"] is None
        await restarted.autoresponses.send_due()
        replies = await _replies(client, room)
        assert len(replies) == 1
        job = await restarted.db.fetchrow("SELECT sent_event_id FROM autoresponse_job")
        assert job["sent_event_id"] == replies[0]["event_id"]
    finally:
        await restarted.stop()
