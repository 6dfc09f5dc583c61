"""SQL of the notification outbox and of the emails sent from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection, Database

from bridge.db import transaction
from bridge.rows import dataclass_from_row

# Outbox rows done (sent, read, skipped, failed) are kept this long, then pruned.
RETENTION_MS = 14 * 24 * 3600 * 1000
_CHUNK = 500


@dataclass
class OutboxRow:
    id: int
    recipient: str
    room_id: str
    event_id: str
    sender: str
    message_ts: int
    email_id: int | None

    @classmethod
    def from_row(cls, row: Any) -> OutboxRow:
        return dataclass_from_row(cls, row)


@dataclass
class Email:
    id: int
    message_id: str
    attempts: int


@dataclass
class DueChat:
    recipient: str
    room_id: str


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- written by the pipeline, inside its transaction ----------------------------------

    @staticmethod
    async def add_many(
        conn: Connection, rows: list[tuple[str, str, str, str, int]], delay_ms: int
    ) -> None:
        """Queue (recipient, room_id, event_id, sender, message_ts) rows, due after the delay."""
        if rows:
            await conn.executemany(
                "INSERT INTO notification_outbox (recipient, room_id, event_id, sender, "
                "message_ts, due_at) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (recipient, event_id) DO NOTHING",
                [(*row, row[4] + delay_ms) for row in rows],
            )

    @staticmethod
    async def read_up_to_many(conn: Connection, reads: list[Any], now: int) -> None:
        """Each read's user read its chat up to its ts: what is pending up to then is cancelled."""
        if reads:
            await conn.executemany(
                "UPDATE notification_outbox SET status='read', done_at=$4 "
                "WHERE status='pending' AND recipient=$1 AND room_id=$2 AND message_ts <= $3",
                [(r.user_id, r.room_id, r.ts, now) for r in reads],
            )

    @staticmethod
    async def withdraw_many(conn: Connection, event_ids: list[str], now: int) -> None:
        """The messages were redacted: no email about them any more."""
        await conn.executemany(
            "UPDATE notification_outbox SET status='skipped', done_at=$2 "
            "WHERE status='pending' AND event_id=$1",
            [(event_id, now) for event_id in event_ids],
        )

    # -- read and written by the worker ---------------------------------------------------

    async def due(self, now: int, limit: int = 100) -> list[DueChat]:
        """(recipient, chat) pairs whose oldest pending row is due and not waiting to retry."""
        rows = await self.db.fetch(
            "SELECT recipient, room_id, min(due_at) AS first_due FROM notification_outbox "
            "WHERE status='pending' GROUP BY recipient, room_id "
            "HAVING min(due_at) <= $1 AND COALESCE(max(retry_at), 0) <= $1 "
            "ORDER BY first_due, recipient, room_id LIMIT $2",
            now,
            limit,
        )
        return [DueChat(r["recipient"], r["room_id"]) for r in rows]

    async def next_due(self) -> int | None:
        """When the next (recipient, chat) pair becomes due, if anything is pending."""
        value = await self.db.fetchval(
            "SELECT min(CASE WHEN r > d THEN r ELSE d END) FROM ("
            "SELECT min(due_at) AS d, COALESCE(max(retry_at), 0) AS r FROM notification_outbox "
            "WHERE status='pending' GROUP BY recipient, room_id) AS pairs"
        )
        return int(value) if value is not None else None

    async def backlog(self) -> tuple[int, int | None]:
        """How many rows are pending, and the earliest due time among them (ms)."""
        row = await self.db.fetchrow(
            "SELECT count(*) AS n, min(due_at) AS first_due FROM notification_outbox "
            "WHERE status='pending'"
        )
        assert row is not None  # an aggregate always has a row
        first_due = row["first_due"]
        return int(row["n"]), int(first_due) if first_due is not None else None

    async def pending(self, recipient: str, room_id: str) -> list[OutboxRow]:
        rows = await self.db.fetch(
            "SELECT id, recipient, room_id, event_id, sender, message_ts, email_id "
            "FROM notification_outbox WHERE status='pending' AND recipient=$1 AND room_id=$2 "
            "ORDER BY message_ts, id",
            recipient,
            room_id,
        )
        return [OutboxRow.from_row(r) for r in rows]

    async def finish(self, ids: list[int], status: str, now: int) -> None:
        await self._update_ids(
            "UPDATE notification_outbox SET status=$1, done_at=$2 "
            "WHERE status='pending' AND id IN ({})",
            ids,
            status,
            now,
        )

    async def postpone(self, ids: list[int], retry_at: int) -> None:
        await self._update_ids(
            "UPDATE notification_outbox SET retry_at=$1 WHERE status='pending' AND id IN ({})",
            ids,
            retry_at,
        )

    async def _update_ids(self, query: str, ids: list[int], *args: Any) -> None:
        async with transaction(self.db) as conn:
            await self._update_in(conn, query, ids, *args)

    @staticmethod
    async def _update_in(conn: Connection, query: str, ids: list[int], *args: Any) -> None:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join(f"${len(args) + i + 1}" for i in range(len(chunk)))
            await conn.execute(query.format(marks), *args, *chunk)

    # -- emails ---------------------------------------------------------------------------

    async def cut_off_email(self, rows: list[OutboxRow]) -> int | None:
        """The email among these rows' that an earlier process was handing to the mail server
        when it stopped (still ``sending``): the server may have accepted it."""
        linked = sorted({r.email_id for r in rows if r.email_id is not None})
        for email_id in linked:
            status = await self.db.fetchval(
                "SELECT status FROM notification_email WHERE id=$1", email_id
            )
            if status == "sending":
                return email_id
        return None

    async def open_email(
        self,
        rows: list[OutboxRow],
        practice_id: str,
        new_message_id: str,
        now: int,
    ) -> Email:
        """The email that carries these rows: the one an earlier attempt opened, or a new one.

        The rows are linked to it before anything is handed to the mail server, so a retry (or
        a resend after the bridge stopped mid-way) keeps the same Message-ID.
        """
        earlier = sorted({r.email_id for r in rows if r.email_id is not None})
        async with transaction(self.db) as conn:
            email = None
            if earlier:
                found = await conn.fetchrow(
                    "SELECT id, message_id, attempts FROM notification_email "
                    "WHERE id=$1 AND status IN ('sending', 'retry')",
                    earlier[0],
                )
                if found is not None:
                    email = Email(int(found["id"]), found["message_id"], int(found["attempts"]))
            if email is None:
                email_id = await conn.fetchval(
                    "INSERT INTO notification_email (recipient, room_id, practice_id, message_id,"
                    " status, created_at) VALUES ($1, $2, $3, $4, 'sending', $5) RETURNING id",
                    rows[0].recipient,
                    rows[0].room_id,
                    practice_id,
                    new_message_id,
                    now,
                )
                email = Email(int(email_id), new_message_id, 0)
            else:
                await conn.execute(
                    "UPDATE notification_email SET status='sending' WHERE id=$1", email.id
                )
            await self._update_in(
                conn,
                "UPDATE notification_outbox SET email_id=$1 WHERE status='pending' AND id IN ({})",
                [r.id for r in rows],
                email.id,
            )
        return email

    async def email_sent(self, email: Email, rows: list[OutboxRow], now: int) -> None:
        await self._attempted(
            email,
            "status='sent', sent_at=$2, error=NULL",
            now,
            rows,
            "status='sent', done_at=$1",
            now,
        )

    async def email_retry(
        self, email: Email, rows: list[OutboxRow], error: str, retry_at: int
    ) -> None:
        await self._attempted(
            email, "status='retry', error=$2", error, rows, "retry_at=$1", retry_at
        )

    async def email_failed(
        self, email: Email, rows: list[OutboxRow], error: str, now: int
    ) -> None:
        await self._attempted(
            email, "status='failed', error=$2", error, rows, "status='failed', done_at=$1", now
        )

    async def _attempted(
        self,
        email: Email,
        email_set: str,
        email_value: Any,
        rows: list[OutboxRow],
        rows_set: str,
        rows_value: Any,
    ) -> None:
        """One sending attempt's outcome: the email (one more attempt) and its pending rows."""
        async with transaction(self.db) as conn:
            await conn.execute(
                f"UPDATE notification_email SET {email_set}, attempts=attempts + 1 WHERE id=$1",
                email.id,
                email_value,
            )
            await self._update_in(
                conn,
                f"UPDATE notification_outbox SET {rows_set} "
                "WHERE status='pending' AND id IN ({})",
                [r.id for r in rows],
                rows_value,
            )

    async def email_dropped(self, email_id: int) -> None:
        """Nothing was left to send on an email opened earlier (all of it read meanwhile)."""
        await self.db.execute(
            "UPDATE notification_email SET status='dropped' "
            "WHERE id=$1 AND status IN ('sending', 'retry')",
            email_id,
        )

    async def sent_since(self, recipient: str, since: int) -> list[int]:
        """When emails went to this recipient after ``since``, oldest first."""
        rows = await self.db.fetch(
            "SELECT sent_at FROM notification_email WHERE recipient=$1 AND status='sent' "
            "AND sent_at > $2 ORDER BY sent_at",
            recipient,
            since,
        )
        return [int(r["sent_at"]) for r in rows]

    async def prune(self, before: int) -> None:
        await self.db.execute(
            "DELETE FROM notification_outbox WHERE status <> 'pending' AND done_at < $1", before
        )
        await self.db.execute(
            "DELETE FROM notification_email WHERE status IN ('sent', 'failed', 'dropped') "
            "AND created_at < $1 AND id NOT IN "
            "(SELECT email_id FROM notification_outbox WHERE email_id IS NOT NULL)",
            before,
        )
