"""Walking a chat's timeline in time order and folding edits, reactions and deletions into rows.

Edits, reactions and deletions come *after* the message they change, so a row cannot be written
when its message is read unless what comes later is already known. Two walks over Synapse, both
forwards and both streaming, with memory bounded by the chat's *relations*, never its messages:

1. **Reactions** (``m.reaction`` only; Synapse filters by type in its database query, so this
   walk reads reaction events and nothing else): a compact ``{event_id: "👍 2, ❤️ 1"}``. A
   reaction that was taken back is a redacted event with empty content and counts for nothing.
2. **Messages** (``m.room.message``, ``m.sticker``): rows are made and handed to the writer page
   by page, the next page already requested while this one is written. The latest edit of each
   message comes *with* it: Synapse bundles it under ``unsigned["m.relations"]["m.replace"]``
   (only edits by the original sender, as the spec asks), so edits need no look-ahead; the edit
   events themselves are skipped. A deleted message arrives redacted, content empty and
   ``unsigned.redacted_because`` set: its row says when, its text is gone.

Replies point *back*, so the message replied to was read before; the last :data:`RECALL`
messages are kept (sender, time, a short excerpt) and an older one is fetched on its own.

The other ways were weighed: fetching backwards and writing forwards needs the whole history
spooled (or held) before the first row; the relations API per message is one request per
message; a bounded look-ahead misses an edit made a week later.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from mautrix.types import RoomID

from bridge.constants import AUTO_REPLY_KEY
from bridge.ports import Rooms
from practice_bridge_synapse.content import strip_reply_fallback

from .people import SenderBook
from .rows import Row, local_time

MESSAGE_TYPES = ["m.room.message", "m.sticker"]
REACTION_TYPES = ["m.reaction"]
#: Recent messages remembered for the replies that quote them.
RECALL = 2000
#: Older messages replied to, fetched at once for a page.
FETCH_CONCURRENCY = 8
EXCERPT = 80
MAX_REACTION_KEY = 64
_KINDS = {
    "m.text": "text",
    "m.notice": "notice",
    "m.emote": "emote",
    "m.image": "image",
    "m.file": "file",
    "m.audio": "audio",
    "m.video": "video",
    "m.location": "location",
}
_VOICE_KEYS = ("org.matrix.msc3245.voice", "org.matrix.msc3245.voice.v2")


@dataclass
class WalkStats:
    pages: int = 0
    events: int = 0
    rows: int = 0
    synapse_wait: float = 0.0  # seconds spent waiting for a page that had not arrived yet


async def pages(
    rooms: Rooms,
    room_id: RoomID,
    start: str | None,
    types: list[str],
    limit: int,
    stats: WalkStats,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Pages of the timeline, oldest first, the next one requested before this one is used."""
    event_filter = {"types": types}

    def fetch(token: str | None) -> asyncio.Task[tuple[list[dict[str, Any]], str | None]]:
        return asyncio.create_task(
            rooms.messages(room_id, from_token=token, limit=limit, event_filter=event_filter)
        )

    token = start
    pending: asyncio.Task[tuple[list[dict[str, Any]], str | None]] | None = fetch(token)
    try:
        while pending is not None:
            began = time.perf_counter()
            chunk, following = await pending
            stats.synapse_wait += time.perf_counter() - began
            stats.pages += 1
            more = following is not None and (following != token or bool(chunk))
            token = following
            pending = fetch(token) if more else None
            if chunk:
                stats.events += len(chunk)
                yield chunk
    finally:
        if pending is not None:
            pending.cancel()


async def collect_reactions(
    rooms: Rooms, room_id: RoomID, start: str | None, stats: WalkStats, limit: int = 1000
) -> dict[str, str]:
    """Every message's reactions as it stands now: ``{event_id: "👍 2, ❤️ 1"}``."""
    found: dict[str, dict[str, set[str]]] = {}
    async with aclosing(pages(rooms, room_id, start, REACTION_TYPES, limit, stats)) as walk:
        async for chunk in walk:
            for ev in chunk:
                rel = (ev.get("content") or {}).get("m.relates_to")
                if not isinstance(rel, dict) or rel.get("rel_type") != "m.annotation":
                    continue  # taken back (redacted), or not a reaction at all
                target, key = rel.get("event_id"), rel.get("key")
                if isinstance(target, str) and isinstance(key, str) and key:
                    keys = found.setdefault(target, {})
                    keys.setdefault(key[:MAX_REACTION_KEY], set()).add(str(ev.get("sender")))
    return {target: reaction_text(keys) for target, keys in found.items()}


def reaction_text(keys: dict[str, set[str]]) -> str:
    """``👍 2, ❤️ 1``: most given first, each person counted once per key."""
    ranked = sorted(keys.items(), key=lambda item: (-len(item[1]), item[0]))
    return ", ".join(f"{key} {len(senders)}" for key, senders in ranked)


def media_link(uri: Any, base: str) -> str:
    """``mxc://server/id`` as the client-server download URL (spec: Content repository,
    authenticated media: the link needs the reader's Matrix session)."""
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        return ""
    server, _, media_id = uri[len("mxc://") :].partition("/")
    if not server or not media_id or "/" in media_id:
        return ""
    return f"{base}/_matrix/client/v1/media/download/{server}/{media_id}"


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1] + "…"


@dataclass(eq=False)
class RowMaker:
    """Turns the message events of one chat into rows, in the order they are read."""

    rooms: Rooms
    room_id: RoomID
    people: SenderBook
    reactions: dict[str, str]
    zone: tzinfo
    media_base: str
    stats: WalkStats

    def __post_init__(self) -> None:
        self.media_base = self.media_base.rstrip("/")
        self.number = 0
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._fetched: dict[str, str] = {}

    async def rows(self, chunk: list[dict[str, Any]], since: int, until: int) -> list[Row]:
        """The rows of a page: messages sent in ``[since, until)`` (ms)."""
        await self._fetch_quoted(chunk)
        out: list[Row] = []
        for ev in chunk:
            if ev.get("type") not in MESSAGE_TYPES or _is_edit(ev):
                continue
            ts = ev.get("origin_server_ts")
            if not isinstance(ts, int) or not since <= ts < until:
                continue
            row = await self._row(ev, ts)
            out.append(row)
        return out

    async def _row(self, ev: dict[str, Any], ts: int) -> Row:
        self.number += 1
        event_id = str(ev.get("event_id"))
        sender = str(ev.get("sender"))
        person = await self.people.get(sender)
        content = ev.get("content") or {}
        row = Row(
            self.number,
            ts,
            event_id,
            person.name,
            person.role,
            person.on_behalf_of,
            "deleted",
            reactions=self.reactions.get(event_id, ""),
        )
        redaction = _redaction(ev)
        if redaction is not None:
            deleted = redaction.get("origin_server_ts")
            row.deleted_ts = deleted if isinstance(deleted, int) else ts
            self._remember(event_id, f"{person.name}, {self._when(ts)}: (deleted)")
            return row
        shown = content
        edit = ((ev.get("unsigned") or {}).get("m.relations") or {}).get("m.replace")
        if isinstance(edit, dict) and edit.get("sender") == sender:
            new = (edit.get("content") or {}).get("m.new_content")
            edited = edit.get("origin_server_ts")
            if isinstance(new, dict):
                shown = new
                row.edited_ts = edited if isinstance(edited, int) else ts
        reply_to = _reply_target(content)
        self._fill(row, ev.get("type"), shown, is_reply=reply_to is not None)
        row.auto_reply = AUTO_REPLY_KEY in content
        if reply_to is not None:
            row.reply_to = await self._quote(reply_to)
        self._remember(
            event_id, f"{person.name}, {self._when(ts)}: {_excerpt(row.text or row.attachment)}"
        )
        return row

    def _fill(self, row: Row, event_type: Any, content: dict[str, Any], is_reply: bool) -> None:
        body = content.get("body")
        body = body if isinstance(body, str) else ""
        if is_reply:
            body = strip_reply_fallback(body)
        msgtype = content.get("msgtype")
        if event_type == "m.sticker":
            row.kind = "sticker"
        elif msgtype == "m.audio" and any(k in content for k in _VOICE_KEYS):
            row.kind = "voice note"
        elif isinstance(msgtype, str):
            row.kind = _KINDS.get(msgtype, msgtype[:40])
        else:
            row.kind = "message"
        url = content.get("url")
        if url is None and isinstance(content.get("file"), dict):
            url = content["file"].get("url")  # an encrypted attachment
        if row.kind == "location":
            row.text = body
            geo = content.get("geo_uri")
            row.link = geo if isinstance(geo, str) and geo.startswith("geo:") else ""
        elif url is not None:
            filename = content.get("filename")
            if isinstance(filename, str) and filename:
                row.attachment = filename
                row.text = body if body != filename else ""
            else:
                row.attachment = body
            info = content.get("info")
            size = info.get("size") if isinstance(info, dict) else None
            if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                row.size = size
            row.link = media_link(url, self.media_base)
        else:
            row.text = body

    def _when(self, ts: int) -> str:
        return local_time(ts, self.zone).strftime("%Y-%m-%d %H:%M")

    def _remember(self, event_id: str, quote: str) -> None:
        self._recent[event_id] = quote
        if len(self._recent) > RECALL:
            self._recent.popitem(last=False)

    async def _fetch_quoted(self, chunk: list[dict[str, Any]]) -> None:
        """Fetch the messages this page replies to that are too far back to be remembered,
        a few at a time, before its rows are made."""
        here = {ev.get("event_id") for ev in chunk}
        wanted = {
            target
            for ev in chunk
            if ev.get("type") in MESSAGE_TYPES
            and (target := _reply_target(ev.get("content") or {})) is not None
            and target not in here
            and target not in self._recent
        }
        self._fetched = {}
        if not wanted:
            return
        began = time.perf_counter()
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(event_id: str) -> tuple[str, dict[str, Any] | None]:
            async with limit:
                return event_id, await self.rooms.get_event(self.room_id, event_id)

        found = await asyncio.gather(*(one(event_id) for event_id in sorted(wanted)))
        self.stats.synapse_wait += time.perf_counter() - began
        for event_id, ev in found:
            self._fetched[event_id] = await self._quote_of(event_id, ev)

    async def _quote(self, event_id: str) -> str:
        """The message replied to: sender, time and the start of its (latest) text."""
        quote = self._recent.get(event_id) or self._fetched.get(event_id)
        if quote is None:  # sent after this page was read; rare
            quote = await self._quote_of(
                event_id, await self.rooms.get_event(self.room_id, event_id)
            )
        self._remember(event_id, quote)
        return quote

    async def _quote_of(self, event_id: str, ev: dict[str, Any] | None) -> str:
        ts = ev.get("origin_server_ts") if ev else None
        if ev is None or ev.get("type") not in MESSAGE_TYPES or not isinstance(ts, int):
            quote = "(an earlier message that is no longer available)"
        else:
            person = await self.people.get(str(ev.get("sender")))
            if _redaction(ev) is not None:
                text = "(deleted)"
            else:
                probe = Row(0, ts, event_id, person.name, person.role, "", "")
                content = ev.get("content") or {}
                edit = ((ev.get("unsigned") or {}).get("m.relations") or {}).get("m.replace")
                if isinstance(edit, dict) and edit.get("sender") == ev.get("sender"):
                    new = (edit.get("content") or {}).get("m.new_content")
                    content = new if isinstance(new, dict) else content
                self._fill(probe, ev.get("type"), content, _reply_target(content) is not None)
                text = _excerpt(probe.text or probe.attachment)
            quote = f"{person.name}, {self._when(ts)}: {text}"
        return quote


def _is_edit(ev: dict[str, Any]) -> bool:
    rel = (ev.get("content") or {}).get("m.relates_to")
    return isinstance(rel, dict) and rel.get("rel_type") == "m.replace"


def _redaction(ev: dict[str, Any]) -> dict[str, Any] | None:
    because = (ev.get("unsigned") or {}).get("redacted_because") or ev.get("redacted_because")
    return because if isinstance(because, dict) else None


def _reply_target(content: dict[str, Any]) -> str | None:
    rel = content.get("m.relates_to")
    reply = rel.get("m.in_reply_to") if isinstance(rel, dict) else None
    target = reply.get("event_id") if isinstance(reply, dict) else None
    return target if isinstance(target, str) and target else None
