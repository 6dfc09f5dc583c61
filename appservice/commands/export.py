"""The seam for ``!pb export``: the bot asks an exporter for a chat's history as a file.

Export is a domain service of its own (docs/export.md). Until one is passed to
:class:`~appservice.commands.BotCommands`, ``!pb export`` answers that export is not available.
The exporter checks who may export and audits the export; the bot uploads the file and sends it
into the staff member's private room, never into the client's room.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Protocol

from bridge.chats.actors import Actor
from bridge.constants import ExportFormat


@dataclass
class ExportFile:
    filename: str
    content_type: str
    #: The file, whole or as chunks; with chunks, ``size`` lets the upload stream them.
    data: bytes | AsyncIterable[bytes]
    size: int | None = None


class ChatExporter(Protocol):
    async def export_chat(self, actor: Actor, chat_id: str, fmt: ExportFormat) -> ExportFile:
        """The chat's history as a file, for this staff member; PracticeError if refused."""
        ...
