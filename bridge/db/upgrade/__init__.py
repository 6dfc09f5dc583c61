"""Migrations, one file per version (vNN_name.py), each registered with index=NN-1."""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable(
    database_name="practice-bridge", version_table_name="practice_bridge_version"
)

# One import per migration, in order; each registers itself on upgrade_table.
from . import (  # noqa: E402,F401
    v01_initial,
    v02_chats,
    v03_bot_commands,
    v04_settings,
    v05_rules,
    v06_notifications,
    v07_message_index,
    v08_event_queue_order,
)
