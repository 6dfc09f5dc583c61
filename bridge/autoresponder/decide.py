"""Deciding, inside the pipeline's transaction, whether a client message gets an auto reply.

Rules (DESIGN §5): only 1:1 chats with clients (never groups); only the chat's practitioner's
autoresponder, when enabled and inside one of its weekly periods in the practice's time zone
(no periods: always); at most once per 30 minutes per chat; never to staff or to another
automatic reply. The decision and the reply to send are written in the same transaction that
marks the message processed, so a redelivered message never decides twice.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mautrix.util.async_db import Connection

from bridge.clock import now_ms
from bridge.events import QueuedEvent
from bridge.identity import IdentityMapper
from bridge.settings import model

log = logging.getLogger("practice.autoresponder")
WINDOW_MS = 30 * 60 * 1000
AUTO_REPLY_KEY = "org.practicebridge.auto_reply"


def in_schedule(periods: list[dict[str, str]], ts_ms: int, timezone: str) -> bool:
    if not periods:
        return True
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(ts_ms / 1000, zone)
    day, clock = model.DAYS[local.weekday()], local.strftime("%H:%M")
    return any(p["day"] == day and p["start"] <= clock < p["end"] for p in periods)


class Autoresponder:
    def __init__(self, mapper: IdentityMapper) -> None:
        self.mapper = mapper

    async def __call__(self, conn: Connection, ev: QueuedEvent) -> None:
        payload = ev.payload
        if payload.get("_edu") or payload.get("type") != "m.room.message":
            return
        content = payload.get("content")
        sender, ts = payload.get("sender"), payload.get("origin_server_ts")
        if not isinstance(content, dict) or AUTO_REPLY_KEY in content:
            return
        if not isinstance(sender, str) or not isinstance(ts, int):
            return
        who = self.mapper.parse(sender)
        if who is None or who.kind != "client":
            return
        chat = await conn.fetchrow(
            "SELECT c.kind, s.user_id, p.timezone FROM chat c "
            "JOIN staff s ON s.practice_id=c.practice_id AND s.staff_id=c.owner_staff_id "
            "JOIN practice p ON p.practice_id=c.practice_id "
            "WHERE c.room_id=$1 AND NOT c.deleted AND s.active",
            ev.room_id,
        )
        if chat is None or chat["kind"] != "direct":
            return
        raw = await conn.fetchval(
            "SELECT settings FROM user_settings WHERE user_id=$1", chat["user_id"]
        )
        auto = model.user_settings(json.loads(raw) if raw else None)["autoresponder"]
        if not auto["enabled"] or not auto["message"].strip():
            return
        if not in_schedule(auto["periods"], ts, chat["timezone"]):
            return
        last = await conn.fetchval(
            "SELECT last_sent_ts FROM autoresponse_window WHERE room_id=$1", ev.room_id
        )
        if last is not None and ts - int(last) < WINDOW_MS:
            return
        await conn.execute(
            "INSERT INTO autoresponse_window (room_id, last_sent_ts) VALUES ($1, $2) "
            "ON CONFLICT (room_id) DO UPDATE SET last_sent_ts=excluded.last_sent_ts",
            ev.room_id,
            ts,
        )
        await conn.execute(
            "INSERT INTO autoresponse_job (trigger_event_id, room_id, sender, message, "
            "created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (trigger_event_id) DO NOTHING",
            ev.event_id,
            ev.room_id,
            chat["user_id"],
            auto["message"],
            now_ms(),
        )
        log.info("Auto reply due in %s for %s", ev.room_id, ev.event_id)
