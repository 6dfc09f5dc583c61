"""What a batch of stored events says about chats: new messages, reads and redactions.

The pipeline hands its handlers whole batches; each handler reads these facts once and writes
its effects with one statement per kind, not one per event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bridge.constants import AUTO_REPLY_KEY
from bridge.events import Batch, QueuedEvent

# Events that count as a message in a chat.
MESSAGE_TYPES = frozenset({"m.room.message", "m.sticker", "m.room.encrypted"})
RECEIPT_TYPES = ("m.read", "m.read.private")


@dataclass(frozen=True)
class Message:
    event_id: str
    room_id: str
    type: str
    sender: str
    ts: int
    content: dict[str, Any]
    edit: bool  # it replaces an earlier message (m.replace)
    auto_reply: bool  # it carries the autoresponder's marker


@dataclass(frozen=True)
class Read:
    user_id: str
    room_id: str
    ts: int


def _memo(events: Iterable[QueuedEvent]) -> dict[Any, Any]:
    """Where a pipeline batch keeps what is derived from it (a throwaway dict otherwise)."""
    return events.memo if isinstance(events, Batch) else {}


def messages(events: Iterable[QueuedEvent], bot: str) -> tuple[Message, ...]:
    """Messages in rooms, in order, leaving out the bot's and those that broke a rule.

    Derived once per batch: every batch handler asks for them."""
    memo = _memo(events)
    key = ("messages", bot)
    found: tuple[Message, ...] | None = memo.get(key)
    if found is None:
        found = memo[key] = tuple(_messages(events, bot))
    return found


def _messages(events: Iterable[QueuedEvent], bot: str) -> list[Message]:
    found = []
    for ev in events:
        p = ev.payload
        if ev.rejected or p.get("_edu") or "state_key" in p or not ev.room_id:
            continue
        event_type, sender, ts = p.get("type"), p.get("sender"), p.get("origin_server_ts")
        content = p.get("content")
        if event_type not in MESSAGE_TYPES or not isinstance(content, dict):
            continue
        if not isinstance(sender, str) or not isinstance(ts, int) or sender == bot:
            continue
        relates = content.get("m.relates_to")
        edit = isinstance(relates, dict) and relates.get("rel_type") == "m.replace"
        auto = isinstance(content.get(AUTO_REPLY_KEY), dict)
        found.append(Message(ev.event_id, ev.room_id, event_type, sender, ts, content, edit, auto))
    return found


def receipts(events: Iterable[QueuedEvent]) -> tuple[Read, ...]:
    """Read receipts (public, and private where the homeserver sends them) as reads."""
    memo = _memo(events)
    found: tuple[Read, ...] | None = memo.get("receipts")
    if found is None:
        found = memo["receipts"] = tuple(_receipts(events))
    return found


def _receipts(events: Iterable[QueuedEvent]) -> list[Read]:
    found = []
    for ev in events:
        p = ev.payload
        if not p.get("_edu") or p.get("type") != "m.receipt" or not ev.room_id:
            continue
        content = p.get("content")
        if not isinstance(content, dict):
            continue
        for by_type in content.values():
            if not isinstance(by_type, dict):
                continue
            for receipt_type in RECEIPT_TYPES:
                users = by_type.get(receipt_type)
                if not isinstance(users, dict):
                    continue
                for user_id, data in users.items():
                    ts = data.get("ts") if isinstance(data, dict) else None
                    if isinstance(user_id, str) and isinstance(ts, int):
                        found.append(Read(user_id, ev.room_id, ts))
    return found


def redactions(events: Iterable[QueuedEvent]) -> list[tuple[str, str]]:
    """The events redacted in this batch: (room_id, event_id) each."""
    found = []
    for ev in events:
        p = ev.payload
        if ev.rejected or p.get("_edu") or p.get("type") != "m.room.redaction":
            continue
        content = p.get("content")
        redacts = p.get("redacts")
        if isinstance(content, dict) and isinstance(content.get("redacts"), str):
            redacts = content["redacts"]  # Room versions 11 and later.
        if isinstance(redacts, str):
            found.append((ev.room_id, redacts))
    return found


def latest_reads(reads: Iterable[Read]) -> list[Read]:
    """One read per (user, chat): the latest."""
    best: dict[tuple[str, str], int] = {}
    for r in reads:
        key = (r.user_id, r.room_id)
        if r.ts > best.get(key, -1):
            best[key] = r.ts
    return [Read(user, room, ts) for (user, room), ts in best.items()]
