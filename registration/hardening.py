"""The Synapse settings recommended beside the bridge, in one place: ``make run``'s Synapse has
them, ``practice-bridge snippet --merge homeserver.yaml --recommended`` sets them in an existing
homeserver.yaml, docs/admin.md explains each (a test holds its table to this list), and
``practice-bridge check`` reports those a running Synapse shows over its client API.
"""

from __future__ import annotations

from typing import Any, Final

RECOMMENDED: Final[dict[str, Any]] = {
    # Accounts come from the practice directory through the bridge, never from a sign-up form.
    "enable_registration": False,
    # Who is online is not the practice's to share between clients.
    "presence": {"enabled": False},
    # A preview makes Synapse fetch every link posted in a chat, telling the linked site.
    "url_preview_enabled": False,
    # Practice chats stay on this server: no other server may join or read them.
    "federation_domain_whitelist": [],
    "allow_public_rooms_over_federation": False,
}
