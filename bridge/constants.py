"""Names and forms that the bridge shares with its API's callers, with Matrix clients and with
the Synapse modules: event and account data types, keys in message content, the form of a
portal id, the export formats. The state event names the Synapse modules read too are theirs
(``practice_bridge_synapse.names``), imported here.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard, get_args

# The devices the bridge makes in portal users' accounts (never a Matrix app's).
from practice_bridge_synapse.names import CHAT_LIST_DEVICE as CHAT_LIST_DEVICE

# State events the bot writes in every chat (only the bot's count).
from practice_bridge_synapse.names import CHAT_STATE as CHAT_STATE
from practice_bridge_synapse.names import POLICY_STATE as POLICY_STATE
from practice_bridge_synapse.names import PORTAL_DEVICE_PREFIX as PORTAL_DEVICE_PREFIX

# A portal id (practice, team member, client), as the portal's own database names them.
ID_PATTERN: Final = r"[A-Za-z0-9._-]{1,64}"

# Per-user state in account data, read by every Matrix client of the user.
PREFERENCES_EVENT: Final = "org.practicebridge.preferences"
FAVOURITE_TAG: Final = "m.favourite"
HIDDEN_TAG: Final = "org.practicebridge.hidden"
LOW_PRIORITY_TAG: Final = "m.lowpriority"
MARKED_UNREAD: Final = "m.marked_unread"
MARKED_UNREAD_UNSTABLE: Final = "com.famedly.marked_unread"

# In the content of the autoresponder's messages: what they answer.
AUTO_REPLY_KEY: Final = "org.practicebridge.auto_reply"

ExportFormat = Literal["xlsx", "csv"]
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = get_args(ExportFormat)


def is_export_format(value: str) -> TypeGuard[ExportFormat]:
    return value in EXPORT_FORMATS


# Opening direct chats in bulk (POST /chats/direct/bulk): clients per request, and chats made
# at once. On one Synapse process two at a time made chats faster than one by one, four slower
# (bench/creation.py, docs/scaling.md): Synapse, not the bridge, is the limit.
BULK_DIRECT_MAX: Final = 100
BULK_DIRECT_CONCURRENCY: Final = 2
