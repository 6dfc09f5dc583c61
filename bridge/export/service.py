"""Exporting a chat (docs/export.md): who may, what the file is called, and the streaming itself.

:meth:`ExportService.prepare` checks the request, reads the chat's reactions (the first walk,
see :mod:`.timeline`) and writes the audit row; everything that can refuse or fail happens
there, before a byte of the file exists. :meth:`ChatExport.chunks` then streams the file while
the messages are read: csv a page at a time, xlsx once the workbook is complete (a zip can only
be finished at the end; until then its rows wait in a temporary file, not in memory).
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import KW_ONLY, dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import IO, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mautrix.types import UserID

from bridge.audit import AuditLog
from bridge.chats.actors import Actor
from bridge.chats.models import Chat
from bridge.chats.refusals import unknown_chat
from bridge.chats.service import ChatService
from bridge.chats.store import ChatStore
from bridge.clock import now_ms
from bridge.constants import ExportFormat
from bridge.directory import DirectoryStore, Practice
from bridge.errors import Codes, PracticeError, invalid_param
from bridge.ports import Rooms
from bridge.settings.model import PracticeSettings

from .csvfile import CsvSheet
from .people import ROLE_LABELS, SenderBook
from .rows import Row
from .timeline import MESSAGE_TYPES, RowMaker, WalkStats, collect_reactions, pages
from .xlsx import XlsxBook

log = logging.getLogger("practice.export")

PAGE_SIZE = 500
CHUNK = 1 << 16
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_FOREVER = 2**62


def not_allowed(message: str) -> PracticeError:
    return PracticeError(Codes.EXPORT_NOT_ALLOWED, message, 403)


@dataclass(frozen=True)
class Requester:
    """Who asks for an export: a portal user, or (``actor`` None) the administrator on the
    command line, who may export any chat."""

    actor: Actor | None
    audit_name: str
    via: Literal["api", "bot", "cli"]

    @classmethod
    def of(cls, actor: Actor, via: Literal["api", "bot", "cli"]) -> Requester:
        return cls(actor, str(actor.user_id), via)


@dataclass(frozen=True)
class Window:
    """Whole days in the practice's time zone, both ends included; None is open."""

    first: date | None = None
    last: date | None = None

    @classmethod
    def parse(cls, first: str | None, last: str | None) -> Window:
        window = cls(_day("from", first), _day("to", last))
        if window.first and window.last and window.first > window.last:
            raise invalid_param("to", "'to' must not be before 'from'.")
        return window

    def bounds(self, zone: ZoneInfo) -> tuple[int, int]:
        """``[since, until)`` in ms; days before the Unix epoch (which no Matrix timestamp
        precedes) count from the epoch."""
        since = _midnight(self.first, zone) if self.first else 0
        if self.last and self.last < date.max:
            until = _midnight(self.last + timedelta(days=1), zone)
        else:
            until = _FOREVER
        return max(since, 0), max(until, 0)

    def label(self) -> str:
        if not self.first and not self.last:
            return "whole history"
        start = self.first.isoformat() if self.first else "the beginning"
        end = self.last.isoformat() if self.last else "today"
        return f"{start} to {end}"


def _day(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    if not _DATE_RE.fullmatch(value):
        raise invalid_param(name, f"'{name}' must be a date such as 2025-01-31.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid_param(name, f"'{name}' must be a date such as 2025-01-31.") from None


def _midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, clock_time(), zone).timestamp() * 1000)


def zone_of(practice: Practice) -> ZoneInfo:
    try:
        return ZoneInfo(practice.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def safe_filename(name: str, limit: int = 120) -> str:
    cleaned = " ".join(_UNSAFE_FILENAME.sub(" ", name).split()).strip(". ")
    return cleaned[:limit].rstrip(". ") or "chat"


@dataclass
class ExportStats(WalkStats):
    writing: float = 0.0  # seconds spent encoding rows and building the file
    total: float = 0.0


@dataclass
class ExportedFile:
    """A finished export in a temporary file, read back in chunks (the file closes at the end,
    or when the reader is dropped)."""

    filename: str
    content_type: str
    size: int
    file: IO[bytes] = field(repr=False)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            self.file.seek(0)
            while chunk := self.file.read(CHUNK):
                yield chunk
        finally:
            self.file.close()


@dataclass(eq=False)
class ChatExport:
    """One prepared export: authorised, audited, reactions read; streams on demand."""

    service: ExportService
    chat: Chat
    practice: Practice
    requester: Requester
    fmt: ExportFormat
    window: Window
    people: SenderBook
    reactions: dict[str, str]
    start: str | None
    stats: ExportStats

    def __post_init__(self) -> None:
        self.zone = zone_of(self.practice)
        self.exported_at = now_ms()
        self.maker = RowMaker(
            self.service.rooms,
            self.chat.room_id,
            self.people,
            self.reactions,
            self.zone,
            self.service.media_base,
            self.stats,
        )
        self.title = ""
        self.members: list[str] = []

    @property
    def filename(self) -> str:
        if self.window.first or self.window.last:
            when = self.window.label()
        else:
            when = datetime.fromtimestamp(self.exported_at / 1000, self.zone).date().isoformat()
        return f"{safe_filename(self.title)} {when}.{self.fmt}"

    @property
    def content_type(self) -> str:
        return XlsxBook.content_type if self.fmt == "xlsx" else CsvSheet.content_type

    async def rows(self) -> AsyncGenerator[list[Row], None]:
        """The rows, a page at a time, in time order."""
        if self.start is None and self.window.first is not None:
            return  # nothing was sent on or after the first day
        since, until = self.window.bounds(self.zone)
        walk = pages(
            self.service.rooms,
            self.chat.room_id,
            self.start,
            MESSAGE_TYPES,
            self.service.page_size,
            self.stats,
        )
        async with aclosing(walk) as chunks:
            async for chunk in chunks:
                rows = await self.maker.rows(chunk, since, until)
                self.stats.rows += len(rows)
                if rows:
                    yield rows
                stamps = [ev.get("origin_server_ts") for ev in chunk]
                if all(isinstance(ts, int) and ts >= until for ts in stamps):
                    return  # the rest of the chat is after the last day

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The file, streamed: csv rows as they are read; xlsx when the workbook is done."""
        began = time.perf_counter()
        zone_name = self.zone.key
        try:
            if self.fmt == "csv":
                sheet = CsvSheet(self.zone, zone_name)
                # The header goes out with the first page: nothing is sent before the
                # homeserver has answered for the messages too.
                header: bytes | None = sheet.header()
                async with aclosing(self.rows()) as pages_of_rows:
                    async for rows in pages_of_rows:
                        t = time.perf_counter()
                        data = sheet.encode(rows)
                        self.stats.writing += time.perf_counter() - t
                        if header is not None:
                            data, header = header + data, None
                        yield data
                if header is not None:
                    yield header
                return
            with XlsxBook(self.zone, zone_name) as book, tempfile.TemporaryFile() as out:
                async with aclosing(self.rows()) as pages_of_rows:
                    async for rows in pages_of_rows:
                        t = time.perf_counter()
                        book.add(rows)
                        self.stats.writing += time.perf_counter() - t
                t = time.perf_counter()
                await asyncio.to_thread(book.finish, self.metadata(), out)
                self.stats.writing += time.perf_counter() - t
                out.seek(0)
                while chunk := out.read(CHUNK):
                    yield chunk
        finally:
            self.stats.total += time.perf_counter() - began

    async def to_file(self) -> ExportedFile:
        """The whole export in a temporary file (for an upload that needs the size first)."""
        out = tempfile.TemporaryFile()
        try:
            async with aclosing(self.chunks()) as chunks:
                async for chunk in chunks:
                    out.write(chunk)
            size = out.tell()
        except BaseException:
            out.close()
            raise
        return ExportedFile(self.filename, self.content_type, size, out)

    def metadata(self) -> list[tuple[str, str]]:
        practice, chat = self.practice, self.chat
        exported_at = datetime.fromtimestamp(self.exported_at / 1000, self.zone)
        rows = [
            ("Practice", f"{practice.name} ({practice.practice_id})"),
            ("Chat", self.title),
            ("Kind", "direct chat" if chat.kind == "direct" else "group chat"),
            ("Chat ID", chat.room_id),
        ]
        rows += [("Member", member) for member in self.members]
        rows += [
            ("Time zone", self.practice.timezone),
            ("Period", self.window.label()),
            ("Messages", str(self.maker.number)),
            ("Exported by", self.service.describe(self.requester)),
            ("Exported at", exported_at.isoformat(" ", "seconds")),
            (
                "Exported through",
                {"api": "API", "bot": "bot command", "cli": "command line"}[self.requester.via],
            ),
            (
                "Attachment links",
                "Open with a Matrix session of the practice's homeserver (authenticated media).",
            ),
        ]
        return rows


@dataclass(eq=False)
class ExportService:
    directory: DirectoryStore
    chats: ChatStore
    rooms: Rooms
    audit: AuditLog
    _: KW_ONLY
    bot: UserID
    bot_name: str
    media_base: str
    page_size: int = PAGE_SIZE

    def __post_init__(self) -> None:
        self.media_base = self.media_base.rstrip("/")

    async def authorize(self, requester: Requester, chat_id: str) -> tuple[Chat, Practice]:
        """The chat, if this requester may export it. Outsiders learn nothing (404); a client
        who is in the chat but may not export it is told so (403)."""
        actor = requester.actor
        chat = await self.chats.get(chat_id)
        if chat is None or (actor is not None and chat.practice_id != actor.practice_id):
            raise unknown_chat()
        practice = await self.directory.get_practice(chat.practice_id)
        if practice is None:
            raise unknown_chat()
        if actor is None:
            return chat, practice
        member = ChatService.is_member(actor, chat)
        if actor.is_staff:
            if member or actor.is_owner:
                return chat, practice
            raise unknown_chat()
        if not member:
            raise unknown_chat()
        if not PracticeSettings.read(practice.settings).clients_may_export:
            raise not_allowed("The practice does not let clients export their chats.")
        if chat.kind != "direct":
            raise not_allowed("Clients may export their direct chats only.")
        return chat, practice

    async def prepare(
        self, requester: Requester, chat_id: str, fmt: ExportFormat, window: Window | None = None
    ) -> ChatExport:
        window = window or Window()
        chat, practice = await self.authorize(requester, chat_id)
        began = time.perf_counter()
        stats = ExportStats()
        since, _ = window.bounds(zone_of(practice))
        start = await self.rooms.token_at(chat.room_id, since) if window.first else None
        reactions: dict[str, str] = {}
        if start is not None or window.first is None:
            reactions = await collect_reactions(self.rooms, chat.room_id, start, stats)
        people = await SenderBook.for_chat(self.directory, chat, self.bot, self.bot_name)
        stats.total += time.perf_counter() - began
        export = ChatExport(
            self, chat, practice, requester, fmt, window, people, reactions, start, stats
        )
        export.title, export.members = await self._describe_chat(chat, requester)
        await self.audit.record(
            chat.practice_id,
            requester.audit_name,
            "chat.exported",
            chat.room_id,
            {
                "format": fmt,
                "from": window.first.isoformat() if window.first else None,
                "to": window.last.isoformat() if window.last else None,
                "via": requester.via,
            },
        )
        log.info("%s exports %s as %s", requester.audit_name, chat.room_id, fmt)
        return export

    async def export_file(
        self, requester: Requester, chat_id: str, fmt: ExportFormat
    ) -> ExportedFile:
        export = await self.prepare(requester, chat_id, fmt)
        return await export.to_file()

    async def _describe_chat(self, chat: Chat, requester: Requester) -> tuple[str, list[str]]:
        """The chat's title (as the requester's chat list names it) and its members."""
        staff = {s.staff_id: s for s in await self.directory.list_staff(chat.practice_id)}
        clients = await self.directory.get_clients(chat.practice_id, sorted(chat.client_ids))
        primaries = sorted(
            {c.family_primary_id for c in clients.values() if c.family_primary_id} - set(clients)
        )
        accounts = await self.directory.get_clients(chat.practice_id, primaries)
        accounts.update(clients)
        members = []
        for sid in chat.staff_ids:
            if sid in staff:
                s = staff[sid]
                how = ROLE_LABELS.get(s.role, s.role)
                if sid == chat.owner_staff_id:
                    how += ", chat owner"
                elif sid in chat.shared_staff_ids:
                    how += ", shared with"
                members.append(f"{s.name} ({how})")
        for cid in chat.client_ids:
            if cid not in clients:
                continue
            c = clients[cid]
            primary = accounts.get(c.family_primary_id or "")
            if primary is not None:
                members.append(
                    f"{c.name} (family member; messages through {primary.name}'s account)"
                )
            else:
                members.append(f"{c.name} (client)")
        if chat.name:
            title = chat.name
        elif requester.actor is not None and not requester.actor.is_staff:
            title = ", ".join(staff[s].name for s in chat.staff_ids if s in staff)
        else:
            title = ", ".join(clients[c].name for c in chat.client_ids if c in clients)
        return title or "chat", members

    def describe(self, requester: Requester) -> str:
        actor = requester.actor
        if actor is None:
            return "the administrator (command line)"
        if actor.staff is not None:
            role = ROLE_LABELS.get(actor.staff.role, actor.staff.role)
            return f"{actor.staff.name} ({role}, {actor.user_id})"
        assert actor.client is not None
        return f"{actor.client.name} (client, {actor.user_id})"
