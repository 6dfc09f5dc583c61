"""Who may get an email about a chat: its members with access, as the practice sees them.

Staff are members by staff id and must be active. Clients are members by client record; a
sub-record's messages are read through its family's primary account, so the primary is the
recipient (docs/architecture.md#identities). An account counts only while it has portal access
(active, activated, portal access on), and a direct chat only while one of its records in the chat
keeps direct chat access (otherwise the chat is out of its view). The same rules run when the
outbox row is written and again when the email is about to go out, so access revoked in between
stops it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from mautrix.util.async_db import Connection, Database

from bridge.settings.model import UserSettings

Audience = Literal["staff", "clients"]
Querier = Connection | Database


@dataclass(frozen=True)
class Recipient:
    user_id: str
    audience: Audience
    name: str
    email: str


@dataclass
class ChatAudience:
    room_id: str
    practice_id: str
    kind: str
    name: str | None
    recipients: dict[str, Recipient] = field(default_factory=dict)
    # Names of the family members (sub-records) the chat is about.
    family_members: list[str] = field(default_factory=list)


async def chat_audience(q: Querier, room_id: str) -> ChatAudience | None:
    """The chat's possible recipients right now, or None if the room is not a live chat."""
    chat = await q.fetchrow(
        "SELECT practice_id, kind, name FROM chat WHERE room_id=$1 AND NOT deleted", room_id
    )
    if chat is None:
        return None
    result = ChatAudience(room_id, chat["practice_id"], chat["kind"], chat["name"])
    staff = await q.fetch(
        "SELECT s.user_id, s.name, s.email FROM chat_member m JOIN staff s "
        "ON s.practice_id=$2 AND s.staff_id=m.member_id "
        "WHERE m.room_id=$1 AND m.kind='staff' AND s.active",
        room_id,
        result.practice_id,
    )
    for r in staff:
        result.recipients[r["user_id"]] = Recipient(r["user_id"], "staff", r["name"], r["email"])
    clients = await q.fetch(
        "SELECT c.name, c.active, c.direct_chat_access, c.family_primary_id, "
        "a.user_id, a.name AS account_name, a.email, a.active AS account_active, a.activated, "
        "a.portal_access, a.family_primary_id AS account_primary "
        "FROM chat_member m JOIN client c ON c.practice_id=$2 AND c.client_id=m.member_id "
        "JOIN client a ON a.practice_id=c.practice_id "
        "AND a.client_id=COALESCE(c.family_primary_id, c.client_id) "
        "WHERE m.room_id=$1 AND m.kind='client' ORDER BY c.name, c.client_id",
        room_id,
        result.practice_id,
    )
    for r in clients:
        if r["family_primary_id"] is not None:
            result.family_members.append(r["name"])
        account_ok = (
            bool(r["account_active"])
            and bool(r["activated"])
            and bool(r["portal_access"])
            and r["account_primary"] is None
        )
        sees = bool(r["active"]) and (result.kind != "direct" or bool(r["direct_chat_access"]))
        if account_ok and sees and r["user_id"] not in result.recipients:
            result.recipients[r["user_id"]] = Recipient(
                r["user_id"], "clients", r["account_name"], r["email"]
            )
    return result


async def email_alerts_on(q: Querier, user_ids: list[str]) -> set[str]:
    """Which of these users want email alerts (their setting, or the default)."""
    wanted = set()
    for start in range(0, len(user_ids), 500):
        chunk = user_ids[start : start + 500]
        marks = ",".join(f"${i + 1}" for i in range(len(chunk)))
        rows = await q.fetch(
            f"SELECT user_id, settings FROM user_settings WHERE user_id IN ({marks})", *chunk
        )
        stored = {r["user_id"]: r["settings"] for r in rows}
        for user_id in chunk:
            raw = stored.get(user_id)
            if UserSettings.read(json.loads(raw) if raw else None).email_alerts:
                wanted.add(user_id)
    return wanted


async def display_name(q: Querier, user_id: str) -> str | None:
    """The directory name of a staff member or client account, as the practice knows them."""
    name = await q.fetchval("SELECT name FROM staff WHERE user_id=$1", user_id)
    if name is None:
        name = await q.fetchval("SELECT name FROM client WHERE user_id=$1", user_id)
    return str(name) if name is not None else None
