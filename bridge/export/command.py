"""``practice-bridge export``: the same export, written to a file, without the HTTP listener.

The command talks to the configured homeserver with the appservice token and opens the bridge's
database (for the directory, the chat and the audit log); the running bridge is not needed and
not disturbed. Without ``--as`` the administrator exports (audited as ``cli``); with ``--as``
(a user id, or a staff id of the chat's practice) the export is checked as that user's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import aclosing
from typing import IO, Any, cast

import aiohttp
from mautrix.appservice import AppService, AppServiceAPI
from mautrix.types import UserID
from mautrix.util.logging import TraceLogger

from bridge.audit import AuditLog
from bridge.chats.actors import resolve_actor
from bridge.chats.store import ChatStore
from bridge.constants import EXPORT_FORMATS
from bridge.db import create_database
from bridge.directory import DirectoryStore
from bridge.errors import PracticeError
from config import Config

from .service import ExportService, Requester, Window


def add_parser(sub: Any) -> None:
    export = sub.add_parser("export", help="export a chat's history to a spreadsheet file")
    export.add_argument("chat_id", help="the chat (room) id, e.g. '!abc:example.org'")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="xlsx")
    export.add_argument("-o", "--output", required=True, help="the file to write")
    export.add_argument("--from", dest="first", help="first day (YYYY-MM-DD, practice time)")
    export.add_argument("--to", dest="last", help="last day (YYYY-MM-DD, included)")
    export.add_argument(
        "--as",
        dest="as_user",
        help="export as this user: a Matrix user id, or a staff id of the chat's practice",
    )


class _Sender:
    """The appservice's client side only: what :class:`SynapseRooms` uses, no listener."""

    def __init__(self, intent: Any) -> None:
        self.intent = intent


async def export_command(config: Config, args: argparse.Namespace) -> int:
    db = create_database(config.appservice.database, config.appservice.database_opts)
    from appservice.homeserver import MemoryASStateStore
    from appservice.rooms import SynapseRooms

    bot = UserID(config.bot_mxid)
    async with aiohttp.ClientSession() as session:
        api = AppServiceAPI(
            base_url=config.homeserver.address,
            bot_mxid=bot,
            token=config.appservice.as_token,
            log=cast(TraceLogger, logging.getLogger("practice.export")),
            state_store=MemoryASStateStore(),
            client_session=session,
        )
        rooms = SynapseRooms(cast(AppService, _Sender(api.bot_intent())))
        await db.start()
        try:
            directory = DirectoryStore(db)
            service = ExportService(
                directory,
                ChatStore(db),
                rooms,
                AuditLog(db),
                bot=bot,
                bot_name=config.appservice.bot_displayname or "Practice bot",
                media_base=config.homeserver.address,
            )
            return await _export(service, directory, args)
        except PracticeError as e:
            print(f"practice-bridge: {e.message} ({e.errcode})", file=sys.stderr)
            return 1
        finally:
            await db.stop()


async def _export(service: ExportService, directory: DirectoryStore, args: Any) -> int:
    window = Window.parse(args.first, args.last)
    requester = Requester(None, "cli", "cli")
    if args.as_user:
        user_id = args.as_user
        if not user_id.startswith("@"):
            chat = await service.chats.get(args.chat_id)
            staff = await directory.get_staff(chat.practice_id, user_id) if chat else None
            if staff is None:
                print(f"practice-bridge: no staff member '{user_id}' in this chat's practice")
                return 1
            user_id = staff.user_id
        actor = await resolve_actor(directory, UserID(user_id))
        requester = Requester(actor, f"cli:{actor.user_id}", "cli")
    export = await service.prepare(requester, args.chat_id, args.format, window)
    partial = f"{args.output}.part"
    out = _create(partial)
    try:
        with out:
            async with aclosing(export.chunks()) as chunks:
                async for chunk in chunks:
                    out.write(chunk)
        os.replace(partial, args.output)
    finally:
        _discard(partial)
    stats = export.stats
    print(
        f"Wrote {stats.rows} messages to {args.output} ({export.filename}) in {stats.total:.1f}s"
    )
    return 0


def _create(path: str) -> IO[bytes]:
    return open(path, "wb")  # noqa: SIM115 - closed by the caller


def _discard(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
