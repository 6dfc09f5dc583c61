"""Sending due automatic replies, once.

Each reply is sent as the practitioner with a transaction id derived from the client message
it answers, so Synapse deduplicates a resend; before resending a reply whose earlier attempt may
have gone through (the bridge stopped between sending and recording), the room's recent
timeline is checked for it. Either way the client gets one reply.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Database

from bridge.background import BackgroundLoop, LoopWorker
from bridge.constants import AUTO_REPLY_KEY
from bridge.ports import Rooms

log = logging.getLogger("practice.autoresponder")
_MAX_ATTEMPTS = 10
_POLL_SECONDS = 1.0


def reply_content(message: str, trigger_event_id: str) -> dict[str, Any]:
    return {
        "msgtype": "m.notice",
        "body": message,
        AUTO_REPLY_KEY: {"in_reply_to_event_id": trigger_event_id},
    }


def txn_id(trigger_event_id: str) -> str:
    return "pb-auto-" + hashlib.sha256(trigger_event_id.encode()).hexdigest()[:32]


class AutoresponseSender(LoopWorker):
    def __init__(self, db: Database, rooms: Rooms) -> None:
        self.db = db
        self.rooms = rooms
        # Woken when the pipeline commits new replies; a slow poll covers anything else.
        super().__init__(
            BackgroundLoop("autoresponse-sender", self.send_due, log, poll=_POLL_SECONDS)
        )

    async def send_due(self) -> int:
        rows = await self.db.fetch(
            "SELECT trigger_event_id, room_id, sender, message, attempts FROM autoresponse_job "
            "WHERE sent_event_id IS NULL AND attempts < $1 ORDER BY created_at LIMIT 100",
            _MAX_ATTEMPTS,
        )
        for row in rows:
            await self._send(row)
        return len(rows)

    async def _send(self, row: Any) -> None:
        trigger, room = row["trigger_event_id"], RoomID(row["room_id"])
        sender = UserID(row["sender"])
        if row["attempts"] > 0:
            found = await self.rooms.find_recent(
                room, AUTO_REPLY_KEY, "in_reply_to_event_id", trigger
            )
            if found:
                await self.mark_sent(trigger, found)
                return
        await self.db.execute(
            "UPDATE autoresponse_job SET attempts = attempts + 1 WHERE trigger_event_id=$1",
            trigger,
        )
        try:
            event_id = await self.rooms.send_message(
                room, sender, reply_content(row["message"], trigger), txn_id(trigger)
            )
        except Exception:
            log.warning("Automatic reply in %s failed; will retry", room, exc_info=True)
            return
        await self.mark_sent(trigger, event_id)
        log.info("Sent the automatic reply in %s", room)

    async def mark_sent(self, trigger: str, event_id: str) -> None:
        await self.db.execute(
            "UPDATE autoresponse_job SET sent_event_id=$2 WHERE trigger_event_id=$1",
            trigger,
            event_id,
        )
