"""Deciding, inside the pipeline's transaction, whether a client message gets an auto reply.

Rules (docs/architecture.md#where-each-rule-is-enforced): only 1:1 chats with clients (never
groups); only the chat's practitioner's autoresponder, when enabled and inside one of its weekly
periods in the practice's time zone (no periods: always); at most once per 30 minutes per chat;
never to staff or to another automatic reply. The decision and the reply to send are written in the
same transaction that marks the message processed, so a redelivered message never decides twice.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mautrix.util.async_db import Connection

from bridge.chats import facts
from bridge.clock import now_ms
from bridge.db import fetch_in
from bridge.events import QueuedEvent
from bridge.identity import IdentityMapper
from bridge.settings import model

log = logging.getLogger("practice.autoresponder")
WINDOW_MS = 30 * 60 * 1000


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
        self.bot = mapper.bot_mxid

    async def __call__(self, conn: Connection, events: list[QueuedEvent]) -> None:
        asked = [m for m in facts.messages(events, self.bot) if self._from_client(m)]
        if not asked:
            return
        # The 1:1 chats asked in, with their practitioner's settings when they have any.
        chats = {
            r["room_id"]: r
            for r in await fetch_in(
                conn,
                "SELECT c.room_id, s.user_id, p.timezone, u.settings FROM chat c "
                "JOIN staff s ON s.practice_id=c.practice_id AND s.staff_id=c.owner_staff_id "
                "JOIN practice p ON p.practice_id=c.practice_id "
                "JOIN user_settings u ON u.user_id=s.user_id "
                "WHERE c.kind='direct' AND NOT c.deleted AND s.active AND c.room_id IN ({})",
                sorted({m.room_id for m in asked}),
            )
        }
        autos = _enabled(chats.values())
        due = [m for m in asked if m.room_id in chats and chats[m.room_id]["user_id"] in autos]
        if not due:
            return
        windows = {
            r["room_id"]: int(r["last_sent_ts"])
            for r in await fetch_in(
                conn,
                "SELECT room_id, last_sent_ts FROM autoresponse_window WHERE room_id IN ({})",
                sorted({m.room_id for m in due}),
            )
        }
        jobs = []
        for m in due:
            chat = chats[m.room_id]
            auto = autos[chat["user_id"]]
            if not in_schedule(auto["periods"], m.ts, chat["timezone"]):
                continue
            last = windows.get(m.room_id)
            if last is not None and m.ts - last < WINDOW_MS:
                continue
            windows[m.room_id] = m.ts
            jobs.append((m.event_id, m.room_id, chat["user_id"], auto["message"], now_ms()))
            log.info("Auto reply due in %s for %s", m.room_id, m.event_id)
        if not jobs:
            return
        await conn.executemany(
            "INSERT INTO autoresponse_window (room_id, last_sent_ts) VALUES ($1, $2) "
            "ON CONFLICT (room_id) DO UPDATE SET last_sent_ts=excluded.last_sent_ts",
            [(room, windows[room]) for room in sorted({job[1] for job in jobs})],
        )
        await conn.executemany(
            "INSERT INTO autoresponse_job (trigger_event_id, room_id, sender, message, "
            "created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (trigger_event_id) DO NOTHING",
            jobs,
        )

    def _from_client(self, m: facts.Message) -> bool:
        """A client's own message (not an edit, not someone's automatic reply)."""
        if m.type != "m.room.message" or m.edit or m.auto_reply:
            return False
        who = self.mapper.parse(m.sender)
        return who is not None and who.kind == "client"


def _enabled(rows: Any) -> dict[str, dict[str, Any]]:
    """The autoresponders that are on, by practitioner."""
    enabled = {}
    for r in rows:
        auto = model.user_settings(json.loads(r["settings"]))["autoresponder"]
        if auto["enabled"] and auto["message"].strip():
            enabled[r["user_id"]] = auto
    return enabled
