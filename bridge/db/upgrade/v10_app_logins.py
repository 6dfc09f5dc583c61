"""v10: Matrix app sign-in for staff, and the room names the bridge writes.

- ``portal_device``: the devices the bridge minted for portal sessions, so that ending a team
  member's Matrix app sign-in ends every other session and leaves the portal's alone. Sessions
  minted before this version are known from the audit log (``session.minted`` names the device).
- ``app_login``: the team members who hold a Matrix app password. The password itself is only
  in Synapse, as Synapse's hash; the bridge never keeps it.
- ``chat.room_name``: the ``m.room.name`` the bridge last wrote, so names are written only when
  they change (a direct chat is named after its client).
"""

from __future__ import annotations

import json

from mautrix.util.async_db import Connection

from . import migration


@migration(10, "Matrix app sign-in: portal devices, app logins, room names")
async def upgrade_v10(conn: Connection) -> None:
    await conn.execute(
        """CREATE TABLE portal_device (
            user_id   TEXT NOT NULL,
            device_id TEXT NOT NULL,
            minted_at BIGINT NOT NULL,
            PRIMARY KEY (user_id, device_id)
        )"""
    )
    await conn.execute(
        """CREATE TABLE app_login (
            user_id     TEXT PRIMARY KEY,
            practice_id TEXT NOT NULL,
            staff_id    TEXT NOT NULL,
            issued_at   BIGINT NOT NULL
        )"""
    )
    await conn.execute("ALTER TABLE chat ADD COLUMN room_name TEXT")
    rows = await conn.fetch(
        "SELECT target, details, ts FROM audit_log WHERE action='session.minted'"
    )
    for row in rows:
        try:
            device_id = json.loads(row["details"]).get("device_id")
        except (ValueError, AttributeError):
            continue
        if row["target"] and isinstance(device_id, str):
            await conn.execute(
                "INSERT INTO portal_device (user_id, device_id, minted_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (user_id, device_id) DO NOTHING",
                row["target"],
                device_id,
                row["ts"],
            )
