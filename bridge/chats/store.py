"""SQL for chats, their members, and the per-user chat state mirror."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mautrix.types import RoomID
from mautrix.util.async_db import Connection, Database

from bridge.db import Reads, fetch_each, transaction

from .models import Chat, UserChatState
from .stamps import chat_stamp, horizons_query, state_stamp

# (kind, last_message_ts, last_sender, the caller's records in the chat)
ListKey = tuple[str, int, str | None, list[str]]
_CHAT_COLUMNS = (
    "c.room_id, c.practice_id, c.kind, c.name, c.owner_staff_id, c.created_at, "
    "c.last_message_ts, c.last_sender, c.deleted"
)


class ChatStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.reads = Reads(db)  # the chat list's reads (bridge/db/inline.py)
        # The room ids of live chats, loaded on first use and kept in step by insert() and
        # mark_deleted(): the pipeline asks "is this room a chat?" for every batch.
        self._live: set[str] | None = None

    async def insert(self, chat: Chat) -> None:
        async with transaction(self.db) as conn:
            await conn.execute(
                "INSERT INTO chat (room_id, practice_id, kind, name, owner_staff_id, created_at,"
                " last_message_ts, last_sender, deleted) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,false)",
                chat.room_id,
                chat.practice_id,
                chat.kind,
                chat.name,
                chat.owner_staff_id,
                chat.created_at,
                chat.last_message_ts,
                chat.last_sender,
            )
            await self._insert_members(conn, chat)
            await _chats_changed(conn, chat.room_id)
        if self._live is not None:
            self._live.add(chat.room_id)

    async def _insert_members(self, conn: Connection, chat: Chat) -> None:
        rows: list[tuple[str, str, str, bool]] = [
            (chat.room_id, "staff", s, s in chat.shared_staff_ids) for s in chat.staff_ids
        ]
        rows += [(chat.room_id, "client", c, False) for c in chat.client_ids]
        await conn.executemany(
            "INSERT INTO chat_member (room_id, kind, member_id, shared) VALUES ($1,$2,$3,$4) "
            "ON CONFLICT (room_id, kind, member_id) DO UPDATE SET shared=excluded.shared",
            rows,
        )

    async def update(self, chat: Chat) -> None:
        """Write the chat's kind, name and members as they are now."""
        async with transaction(self.db) as conn:
            await conn.execute(
                "UPDATE chat SET kind=$2, name=$3, owner_staff_id=$4 WHERE room_id=$1",
                chat.room_id,
                chat.kind,
                chat.name,
                chat.owner_staff_id,
            )
            await conn.execute("DELETE FROM chat_member WHERE room_id=$1", chat.room_id)
            await self._insert_members(conn, chat)
            await _chats_changed(conn, chat.room_id)

    async def mark_deleted(self, room_id: RoomID) -> None:
        async with transaction(self.db) as conn:
            await conn.execute("UPDATE chat SET deleted=true WHERE room_id=$1", room_id)
            await conn.execute("DELETE FROM chat_member WHERE room_id=$1", room_id)
            await conn.execute("DELETE FROM user_chat_state WHERE room_id=$1", room_id)
            await _chats_changed(conn, room_id)
        if self._live is not None:
            self._live.discard(room_id)

    async def versions(self, practice_id: str) -> tuple[int, int] | None:
        """The practice's (clients_version, chats_version): what its contacts were made of."""
        row = await self.reads.fetchrow(
            "SELECT clients_version, chats_version FROM practice WHERE practice_id=$1",
            practice_id,
        )
        return (int(row[0]), int(row[1])) if row is not None else None

    async def get(self, room_id: str) -> Chat | None:
        row = await self.db.fetchrow(
            f"SELECT {_CHAT_COLUMNS} FROM chat c WHERE c.room_id=$1 AND NOT c.deleted", room_id
        )
        if row is None:
            return None
        chat = Chat.from_row(row)
        rows = await self.db.fetch(
            "SELECT kind AS member_kind, member_id, shared FROM chat_member WHERE room_id=$1",
            room_id,
        )
        _add_members(chat, rows)
        return chat

    async def _fetch_in(self, query: str, values: list[str], *args: Any) -> list[Any]:
        return await fetch_each(self.reads, query, values, *args)

    async def for_member(
        self, practice_id: str, kind: str, member_ids: Iterable[str]
    ) -> list[Chat]:
        """Every live chat of the practice that has one of these staff or client records, with
        all its members: one query, a row per member of each chat."""
        ids = list(member_ids)
        if not ids:
            return []
        rows = await self._fetch_in(
            f"SELECT {_CHAT_COLUMNS}, o.kind AS member_kind, o.member_id, o.shared "
            "FROM chat_member m JOIN chat c ON c.room_id=m.room_id "
            "JOIN chat_member o ON o.room_id=m.room_id "
            "WHERE c.practice_id=$1 AND NOT c.deleted AND m.kind=$2 AND m.member_id IN ({})",
            ids,
            practice_id,
            kind,
        )
        return list(_chats_from_rows(rows, dedupe=len(ids) > 1).values())

    async def list_keys(
        self, practice_id: str, kind: str, member_ids: Iterable[str], user_id: str
    ) -> tuple[dict[str, ListKey], dict[str, UserChatState]]:
        """What the chat list sorts and filters by, for every live chat of these staff or client
        records: (kind, last message time, last sender, which of the records are in it); and
        ``user_id``'s state of each of those chats that has one. One query."""
        ids = list(member_ids)
        if not ids:
            return {}, {}
        rows = await self._fetch_in(
            "SELECT c.room_id, c.kind, c.last_message_ts, c.last_sender, m.member_id, "
            "s.favourite, s.marked_unread, s.hidden_at, s.read_ts "
            "FROM chat_member m JOIN chat c ON c.room_id=m.room_id "
            "LEFT JOIN user_chat_state s ON s.user_id=$3 AND s.room_id=c.room_id "
            "WHERE c.practice_id=$1 AND NOT c.deleted AND m.kind=$2 AND m.member_id IN ({})",
            ids,
            practice_id,
            kind,
            user_id,
        )
        keys: dict[str, ListKey] = {}
        states: dict[str, UserChatState] = {}
        for r in rows:
            key = keys.get(r[0])
            if key is not None:
                key[3].append(r[4])
                continue
            keys[r[0]] = (r[1], int(r[2]), r[3], [r[4]])
            if r[5] is not None:
                states[r[0]] = UserChatState(bool(r[5]), bool(r[6]), r[7], r[8])
        return keys, states

    async def get_many(self, room_ids: list[str]) -> dict[str, Chat]:
        """These live chats with all their members, by room id (deleted ones left out)."""
        if not room_ids:
            return {}
        rows = await self._fetch_in(
            f"SELECT {_CHAT_COLUMNS}, o.kind AS member_kind, o.member_id, o.shared "
            "FROM chat c JOIN chat_member o ON o.room_id=c.room_id "
            "WHERE NOT c.deleted AND c.room_id IN ({})",
            room_ids,
        )
        return _chats_from_rows(rows, dedupe=False)

    async def room_name(self, room_id: str) -> str | None:
        """The ``m.room.name`` the bridge last wrote in the room."""
        return await self.db.fetchval("SELECT room_name FROM chat WHERE room_id=$1", room_id)

    async def set_room_name(self, room_id: str, name: str | None) -> None:
        await self.db.execute("UPDATE chat SET room_name=$2 WHERE room_id=$1", room_id, name)

    async def unnamed_rooms(self) -> list[str]:
        """Live chats whose room the bridge has not named yet."""
        rows = await self.db.fetch(
            "SELECT room_id FROM chat WHERE NOT deleted AND room_name IS NULL"
        )
        return [r["room_id"] for r in rows]

    async def live_room_ids(self) -> list[str]:
        """Every chat's room that is not deleted."""
        rows = await self.db.fetch("SELECT room_id FROM chat WHERE NOT deleted ORDER BY room_id")
        return [row["room_id"] for row in rows]

    async def live_rooms(self, conn: Connection, room_ids: set[str]) -> set[str]:
        """Which of these rooms are live chats."""
        if self._live is None:
            rows = await conn.fetch("SELECT room_id FROM chat WHERE NOT deleted")
            self._live = {r["room_id"] for r in rows}
        return room_ids & self._live

    @staticmethod
    async def record_activity(conn: Connection, latest: list[tuple[str, int, str]]) -> None:
        """Move chats' last message time forward: (room_id, ts, sender) each."""
        if latest:
            await conn.executemany(
                "UPDATE chat SET last_message_ts=$2, last_sender=$3, "
                f"activity_stamp={chat_stamp(conn.scheme)} "
                "WHERE room_id=$1 AND last_message_ts <= $2",
                latest,
            )

    async def horizons(self, practice_id: str, user_id: str) -> tuple[int, int, int] | None:
        """The practice's chats_version, then the horizons (bridge/chats/stamps.py) of its chats'
        activity and of the user's chat states; None for a practice that is not there."""
        query, per_user = horizons_query(self.db.scheme)
        row = await self.reads.fetchrow(query, practice_id, *((user_id,) if per_user else ()))
        return (int(row[0]), int(row[1]), int(row[2])) if row is not None else None

    async def activity_since(
        self, practice_id: str, horizon: int
    ) -> list[tuple[str, int, str | None]]:
        """(room_id, last message time, last sender) of the practice's chats whose last message
        moved at or after ``horizon``."""
        rows = await self.reads.fetch(
            "SELECT room_id, last_message_ts, last_sender FROM chat "
            "WHERE practice_id=$1 AND activity_stamp >= $2",
            practice_id,
            horizon,
        )
        return [(r[0], int(r[1]), r[2]) for r in rows]

    # -- per-user state --------------------------------------------------------------------

    async def user_states(self, user_id: str, since: int = 0) -> dict[str, UserChatState]:
        """The user's state of every chat they have one for; with ``since``, only the states
        written at or after that horizon (bridge/chats/stamps.py: every stamp is at least 0)."""
        rows = await self.reads.fetch(
            "SELECT room_id, favourite, marked_unread, hidden_at, read_ts FROM user_chat_state "
            "WHERE user_id=$1 AND stamp >= $2",
            user_id,
            since,
        )
        return {r[0]: UserChatState(bool(r[1]), bool(r[2]), r[3], r[4]) for r in rows}

    async def user_state(self, user_id: str, room_id: str) -> UserChatState | None:
        r = await self.db.fetchrow(
            "SELECT favourite, marked_unread, hidden_at, read_ts FROM user_chat_state "
            "WHERE user_id=$1 AND room_id=$2",
            user_id,
            room_id,
        )
        if r is None:
            return None
        return UserChatState(
            bool(r["favourite"]), bool(r["marked_unread"]), r["hidden_at"], r["read_ts"]
        )

    async def save_user_states(
        self, user_id: str, states: dict[str, UserChatState], next_batch: str | None = None
    ) -> None:
        async with transaction(self.db) as conn:
            await conn.executemany(
                "INSERT INTO user_chat_state (user_id, room_id, favourite, marked_unread, "
                "hidden_at, read_ts, stamp) "
                f"VALUES ($1,$2,$3,$4,$5,$6,{state_stamp(conn.scheme, '$1')}) "
                "ON CONFLICT (user_id, room_id) DO UPDATE SET favourite=excluded.favourite, "
                "marked_unread=excluded.marked_unread, hidden_at=excluded.hidden_at, "
                "stamp=excluded.stamp, "
                # A read mark only moves forward, whoever writes it meanwhile.
                "read_ts=CASE WHEN excluded.read_ts > user_chat_state.read_ts "
                "THEN excluded.read_ts ELSE user_chat_state.read_ts END",
                [
                    (user_id, room, s.favourite, s.marked_unread, s.hidden_at, s.read_ts)
                    for room, s in states.items()
                ],
            )
            if next_batch is not None:
                await conn.execute(
                    "INSERT INTO user_sync (user_id, next_batch) VALUES ($1, $2) "
                    "ON CONFLICT (user_id) DO UPDATE SET next_batch=excluded.next_batch",
                    user_id,
                    next_batch,
                )

    async def read_marks_of(self, user_ids: list[str]) -> dict[tuple[str, str], int]:
        """When each of these users last read each chat they read: {(room_id, user_id): ts}
        (by the primary key: the cost follows these users' chats, not the table)."""
        return {
            (r[0], r[1]): int(r[2])
            for r in await self._fetch_in(
                "SELECT room_id, user_id, read_ts FROM user_chat_state "
                "WHERE read_ts > 0 AND user_id IN ({})",
                user_ids,
            )
        }

    async def sync_token(self, user_id: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT next_batch FROM user_sync WHERE user_id=$1", user_id
        )
        return str(value) if value is not None else None

    @staticmethod
    async def record_reads(conn: Connection, reads: list[Any]) -> None:
        """Users read chats up to a time (they sent a message, or a receipt arrived); each read
        has user_id, room_id and ts. A read mark only ever moves forward."""
        if reads:
            await conn.executemany(
                "INSERT INTO user_chat_state (user_id, room_id, read_ts, stamp) "
                f"VALUES ($1,$2,$3,{state_stamp(conn.scheme, '$1')}) "
                "ON CONFLICT (user_id, room_id) DO UPDATE SET read_ts=excluded.read_ts, "
                "stamp=excluded.stamp WHERE user_chat_state.read_ts < excluded.read_ts",
                [(r.user_id, r.room_id, r.ts) for r in reads],
            )


async def _chats_changed(conn: Connection, room_id: str) -> None:
    """Move the chat's practice's chats_version on (in the transaction of the change)."""
    await conn.execute(
        "UPDATE practice SET chats_version=chats_version+1 "
        "WHERE practice_id=(SELECT practice_id FROM chat WHERE room_id=$1)",
        room_id,
    )


def _chats_from_rows(rows: list[Any], *, dedupe: bool) -> dict[str, Chat]:
    """Chats from rows of a chat's columns then one member's (kind, id, shared), by position;
    ``dedupe`` when a chat may come once per id it was reached through."""
    chats: dict[str, Chat] = {}
    for r in rows:
        chat = chats.get(r[0])
        if chat is None:
            chat = chats[r[0]] = Chat(
                RoomID(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8])
            )
        if r[9] == "staff":
            chat.staff_ids.append(r[10])
            if r[11]:
                chat.shared_staff_ids.append(r[10])
        else:
            chat.client_ids.append(r[10])
    for chat in chats.values():
        if dedupe:
            chat.staff_ids[:] = set(chat.staff_ids)
            chat.shared_staff_ids[:] = set(chat.shared_staff_ids)
            chat.client_ids[:] = set(chat.client_ids)
        chat.staff_ids.sort()
        chat.shared_staff_ids.sort()
        chat.client_ids.sort()
    return chats


def _add_members(chat: Chat, rows: list[Any]) -> None:
    """The chat's staff and client records, each list in id order; shared staff among them."""
    staff = sorted(
        (r["member_id"], bool(r["shared"])) for r in rows if r["member_kind"] == "staff"
    )
    chat.staff_ids.extend(sid for sid, _ in staff)
    chat.shared_staff_ids.extend(sid for sid, shared in staff if shared)
    chat.client_ids.extend(sorted(r["member_id"] for r in rows if r["member_kind"] != "staff"))
