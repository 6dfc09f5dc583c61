"""Migrations, one file per version, registered on one UpgradeTable in order."""

from mautrix.util.async_db import UpgradeTable

upgrade_table = UpgradeTable(
    database_name="practice-bridge", version_table_name="practice_bridge_version"
)

from . import v01_initial  # noqa: E402,F401  (registers itself)
from . import v02_chats  # noqa: E402,F401
