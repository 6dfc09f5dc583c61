"""SQL for the directory tables."""

from __future__ import annotations

import json
from collections import OrderedDict

from mautrix.util.async_db import Connection, Database

from bridge.clock import now_ms
from bridge.db import Reads, fetch_each, transaction

from .models import Client, Practice, Staff

CLIENT_LISTS_KEPT = 16  # practices whose whole client list a process keeps in memory
KEEP_FOR_MANY = 200  # asked for this many clients at once, the practice's list is kept
# A practice's kept client list: (its clients_version, its clients by name, the same by id).
KeptClients = tuple[int, list[Client], dict[str, Client]]


class DirectoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.reads = Reads(db)  # the short reads of every request (bridge/db/inline.py)
        # {practice: its kept client list}, the least used dropped first.
        self._client_lists: OrderedDict[str, KeptClients] = OrderedDict()

    async def get_practice(self, practice_id: str) -> Practice | None:
        row = await self.db.fetchrow("SELECT * FROM practice WHERE practice_id=$1", practice_id)
        return Practice.from_row(row) if row else None

    async def upsert_practice(self, p: Practice) -> None:
        now = now_ms()
        await self.db.execute(
            """INSERT INTO practice (practice_id, name, plan, timezone, settings, created_at,
                                     updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $6)
               ON CONFLICT (practice_id) DO UPDATE
               SET name=excluded.name, plan=excluded.plan, timezone=excluded.timezone,
                   updated_at=excluded.updated_at""",
            p.practice_id,
            p.name,
            p.plan,
            p.timezone,
            json.dumps(p.settings),
            now,
        )

    async def set_practice_settings(self, practice_id: str, settings: dict) -> None:
        await self.db.execute(
            "UPDATE practice SET settings=$2, updated_at=$3 WHERE practice_id=$1",
            practice_id,
            json.dumps(settings),
            now_ms(),
        )

    async def get_staff(self, practice_id: str, staff_id: str) -> Staff | None:
        row = await self.db.fetchrow(
            "SELECT * FROM staff WHERE practice_id=$1 AND staff_id=$2", practice_id, staff_id
        )
        return Staff.from_row(row) if row else None

    async def get_staff_by_user(self, user_id: str) -> Staff | None:
        row = await self.reads.fetchrow("SELECT * FROM staff WHERE user_id=$1", user_id)
        return Staff.from_row(row) if row else None

    async def list_staff(self, practice_id: str) -> list[Staff]:
        rows = await self.reads.fetch(
            "SELECT * FROM staff WHERE practice_id=$1 ORDER BY name, staff_id", practice_id
        )
        return [Staff.from_row(r) for r in rows]

    async def upsert_staff(self, s: Staff) -> None:
        await self.db.execute(
            """INSERT INTO staff (practice_id, staff_id, user_id, name, email, role, active,
                                  updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (practice_id, staff_id) DO UPDATE
               SET name=excluded.name, email=excluded.email, role=excluded.role,
                   active=excluded.active, updated_at=excluded.updated_at""",
            s.practice_id,
            s.staff_id,
            s.user_id,
            s.name,
            s.email,
            s.role,
            s.active,
            now_ms(),
        )

    async def get_client(self, practice_id: str, client_id: str) -> Client | None:
        row = await self.db.fetchrow(
            "SELECT * FROM client WHERE practice_id=$1 AND client_id=$2", practice_id, client_id
        )
        return Client.from_row(row) if row else None

    async def get_client_by_user(self, user_id: str) -> Client | None:
        row = await self.reads.fetchrow("SELECT * FROM client WHERE user_id=$1", user_id)
        return Client.from_row(row) if row else None

    async def list_clients(self, practice_id: str) -> list[Client]:
        """Every client record of the practice, by name. The list is kept in memory and read
        again only after a client of the practice was written (by any process: the practice's
        ``clients_version`` moves on with every write), so a practice of ten thousand clients
        costs one short read. The records are shared between callers: not to be changed."""
        version = await self._clients_version(practice_id)
        kept = self._kept(practice_id, version)
        if kept is not None:
            return list(kept[1])
        rows = await self.db.fetch(
            "SELECT * FROM client WHERE practice_id=$1 ORDER BY name, client_id", practice_id
        )
        clients = [Client.from_row(r) for r in rows]
        if version is not None:
            self._client_lists[practice_id] = (
                version,
                clients,
                {c.client_id: c for c in clients},
            )
            self._client_lists.move_to_end(practice_id)
            while len(self._client_lists) > CLIENT_LISTS_KEPT:
                self._client_lists.popitem(last=False)
        return list(clients)

    async def _clients_version(self, practice_id: str) -> int | None:
        version = await self.reads.fetchval(
            "SELECT clients_version FROM practice WHERE practice_id=$1", practice_id
        )
        return int(version) if version is not None else None

    def _kept(self, practice_id: str, version: int | None) -> KeptClients | None:
        kept = self._client_lists.get(practice_id)
        if kept is None or kept[0] != version:
            return None
        self._client_lists.move_to_end(practice_id)
        return kept

    async def get_clients(self, practice_id: str, client_ids: list[str]) -> dict[str, Client]:
        """These client records of the practice, by id (from the kept list while it is
        current: a page of a thousand chats names its clients without reading them again).
        Asked for many, it keeps the practice's list first, as ``list_clients`` does."""
        if not client_ids:
            return {}
        if practice_id in self._client_lists or len(client_ids) >= KEEP_FOR_MANY:
            kept = self._kept(practice_id, await self._clients_version(practice_id))
            if kept is None and len(client_ids) >= KEEP_FOR_MANY:
                await self.list_clients(practice_id)
                kept = self._client_lists.get(practice_id)
            if kept is not None:
                by_id = kept[2]
                return {cid: by_id[cid] for cid in client_ids if cid in by_id}
        rows = await fetch_each(
            self.reads,
            "SELECT * FROM client WHERE practice_id=$1 AND client_id IN ({})",
            client_ids,
            practice_id,
        )
        return {r["client_id"]: Client.from_row(r) for r in rows}

    async def list_family(self, practice_id: str, primary_id: str) -> list[Client]:
        rows = await self.reads.fetch(
            "SELECT * FROM client WHERE practice_id=$1 AND family_primary_id=$2 "
            "ORDER BY name, client_id",
            practice_id,
            primary_id,
        )
        return [Client.from_row(r) for r in rows]

    async def upsert_client(self, c: Client) -> None:
        async with transaction(self.db) as conn:
            await self._upsert_client(conn, c)
            await conn.execute(
                "UPDATE practice SET clients_version=clients_version+1 WHERE practice_id=$1",
                c.practice_id,
            )

    @staticmethod
    async def _upsert_client(conn: Connection, c: Client) -> None:
        await conn.execute(
            """INSERT INTO client (practice_id, client_id, user_id, name, email, activated,
                                   portal_access, family_primary_id, direct_chat_access, active,
                                   updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (practice_id, client_id) DO UPDATE
               SET name=excluded.name, email=excluded.email, activated=excluded.activated,
                   portal_access=excluded.portal_access,
                   family_primary_id=excluded.family_primary_id,
                   direct_chat_access=excluded.direct_chat_access, active=excluded.active,
                   updated_at=excluded.updated_at""",
            c.practice_id,
            c.client_id,
            c.user_id,
            c.name,
            c.email,
            c.activated,
            c.portal_access,
            c.family_primary_id,
            c.direct_chat_access,
            c.active,
            now_ms(),
        )

    # -- portal devices and Matrix app logins ---------------------------------------------------

    async def add_portal_device(self, user_id: str, device_id: str) -> None:
        await self.db.execute(
            "INSERT INTO portal_device (user_id, device_id, minted_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (user_id, device_id) DO NOTHING",
            user_id,
            device_id,
            now_ms(),
        )

    async def portal_devices(self, user_id: str) -> set[str]:
        rows = await self.db.fetch("SELECT device_id FROM portal_device WHERE user_id=$1", user_id)
        return {r["device_id"] for r in rows}

    async def drop_portal_devices(self, user_id: str, device_ids: set[str] | None = None) -> None:
        """Forget these portal devices of the user (all of them with None): they are gone."""
        if device_ids is None:
            await self.db.execute("DELETE FROM portal_device WHERE user_id=$1", user_id)
            return
        for device_id in device_ids:
            await self.db.execute(
                "DELETE FROM portal_device WHERE user_id=$1 AND device_id=$2", user_id, device_id
            )

    async def set_app_login(self, s: Staff) -> bool:
        """Record that the team member holds a Matrix app password; True if they held one.
        (Callers hold the person's lock: the two statements need no transaction.)"""
        held = await self.db.fetchval("SELECT 1 FROM app_login WHERE user_id=$1", s.user_id)
        await self.db.execute(
            """INSERT INTO app_login (user_id, practice_id, staff_id, issued_at)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (user_id) DO UPDATE SET issued_at=excluded.issued_at""",
            s.user_id,
            s.practice_id,
            s.staff_id,
            now_ms(),
        )
        return held is not None

    async def drop_app_login(self, user_id: str) -> bool:
        """Forget the team member's Matrix app password; True if they held one."""
        held = await self.db.fetchval("SELECT 1 FROM app_login WHERE user_id=$1", user_id)
        await self.db.execute("DELETE FROM app_login WHERE user_id=$1", user_id)
        return held is not None
