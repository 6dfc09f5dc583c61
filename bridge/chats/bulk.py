"""Opening many direct chats in one request: a practice's first contact with its clients.

Each client is opened as ``POST /chats/direct`` would (an existing chat is opened, a missing one
created), a few at a time, and each gets its own result: the chat, or the refusal it met. The
practitioner's ``m.direct`` is written once for all the new chats.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mautrix.types import RoomID, UserID

from bridge.constants import BULK_DIRECT_CONCURRENCY
from bridge.db import storage_unavailable
from bridge.errors import Codes, PracticeError

from . import refusals as refuse
from .actors import Actor
from .service import ChatService

log = logging.getLogger("practice.chats")


async def open_direct_chats(
    service: ChatService,
    actor: Actor,
    client_ids: list[str],
    concurrency: int = BULK_DIRECT_CONCURRENCY,
) -> list[dict[str, Any]]:
    """The staff caller's 1:1 chat with each client, in the order asked (repeats once)."""
    if actor.staff is None:
        raise refuse.staff_only()
    gate = asyncio.Semaphore(concurrency)
    staff_direct: dict[RoomID, UserID] = {}

    async def one(client_id: str) -> dict[str, Any]:
        async with gate:
            try:
                chat, created = await service.start_direct(
                    actor,
                    client_id=client_id,
                    staff_id=None,
                    chat_id=None,
                    create_new=False,
                    staff_direct=staff_direct,
                )
            except PracticeError as e:
                item = e.to_json()
                item.pop("candidates", None)  # CHOOSE_CHAT: ask POST /chats/direct for them
                return {"client_id": client_id, **item}
            except Exception as e:
                if storage_unavailable(e):
                    raise
                log.warning("Could not open a chat with %s: %s", client_id, type(e).__name__)
                return {"client_id": client_id, **not_opened().to_json()}
        return {"client_id": client_id, "chat_id": chat.room_id, "created": created}

    try:
        return list(await asyncio.gather(*(one(c) for c in dict.fromkeys(client_ids))))
    finally:
        if staff_direct:
            await _remember(service, actor.user_id, staff_direct)


async def _remember(service: ChatService, staff: UserID, new: dict[RoomID, UserID]) -> None:
    by_client: dict[UserID, list[RoomID]] = {}
    for room_id, client in new.items():
        by_client.setdefault(client, []).append(room_id)
    try:
        await service.direct.remember(staff, by_client)
    except Exception as e:
        # The chats exist and are listed; m.direct only helps other Matrix apps find them.
        log.warning("Could not add %d chats to m.direct of %s: %s", len(new), staff, type(e))


def not_opened() -> PracticeError:
    return PracticeError(
        Codes.UNKNOWN, "The homeserver did not complete this chat; try again.", 502
    )
