"""Bot commands for staff in standard Matrix apps: ``!pb help``, ``!pb share``...
(docs/chats.md#bot-commands).

- :mod:`.parse` recognises a command in a message and finds people by id or name;
- :mod:`.intake` is the pipeline handler that records commands as durable jobs;
- :mod:`.worker` runs them after the pipeline's transaction has committed;
- :mod:`.runner` runs one command through the chat services;
- :mod:`.private` is the bot's side on Matrix: private rooms, notices, redactions, files;
- :mod:`.export` is the seam for ``!pb export``.

Wired once in ``bridge/app.py``: ``pipeline.add_handler(commands.intake)``, then
``commands.start()`` / ``await commands.stop()``.
"""

from __future__ import annotations

from mautrix.appservice import AppService
from mautrix.util.async_db import Database

from bridge.chats.listing import ChatDirectory
from bridge.chats.service import ChatService
from bridge.chats.store import ChatStore
from bridge.directory import DirectoryStore
from bridge.metrics import Metrics
from bridge.ports import Rooms

from .export import ChatExporter, ExportFile
from .intake import CommandIntake
from .private import PrivateRooms
from .runner import CommandRunner
from .store import CommandStore
from .worker import CommandWorker


class BotCommands:
    """The pieces of bot commands, built from the services they act through."""

    def __init__(
        self,
        db: Database,
        az: AppService,
        rooms: Rooms,
        directory: DirectoryStore,
        chats: ChatStore,
        service: ChatService,
        listing: ChatDirectory,
        *,
        exporter: ChatExporter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = CommandStore(db)
        self.private = PrivateRooms(az, rooms, self.store)
        self.runner = CommandRunner(
            directory,
            chats,
            service,
            listing,
            self.private,
            self.store,
            az.domain,
            exporter,
        )
        self.worker = CommandWorker(self.store, self.runner, metrics)
        self.intake = CommandIntake(self.store, az.bot_mxid, self.worker.expect)

    @property
    def exporter(self) -> ChatExporter | None:
        return self.runner.exporter

    @exporter.setter
    def exporter(self, exporter: ChatExporter | None) -> None:
        """Plug in the export service once it exists (``!pb export`` then delivers files)."""
        self.runner.exporter = exporter

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    async def wait_idle(self, timeout: float = 30) -> None:
        await self.worker.wait_idle(timeout)


__all__ = ["BotCommands", "ChatExporter", "CommandStore", "ExportFile"]
