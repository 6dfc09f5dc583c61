"""What Synapse may tell about a user, and to whom: the homeserver.yaml settings that keep the
practice's directory private (docs/admin.md#privacy-of-the-directory).

Being someone's client at a health practice is itself health information, and a portal user id
follows a template over practice and client ids, so it can be guessed. Synapse answers profile
lookups to anyone by default; with these settings a profile answers only a signed-in user who
shares a room with its owner. ``registration`` writes them into every homeserver.yaml it makes
and into the snippet for an existing one; the bridge checks a running Synapse for the first two
at start (``appservice.privacy``).
"""

from __future__ import annotations

from typing import Any

# No profile (display name, avatar) without an access token.
REQUIRE_AUTH = "require_auth_for_profile_requests"
# ...and only to a user who shares a room with its owner (Synapse needs the first for this).
SHARED_ROOMS = "limit_profile_requests_to_users_who_share_rooms"

SYNAPSE_SETTINGS: dict[str, Any] = {
    REQUIRE_AUTH: True,
    SHARED_ROOMS: True,
    # An invitation would otherwise carry the invitee's profile to whoever can invite them;
    # members get their names when they join (the bridge joins them at once).
    "include_profile_data_on_invite": False,
    # The user directory finds only users who share a room with the searcher (Synapse keeps
    # appservice users, every portal user among them, out of it anyway).
    "user_directory": {"search_all_users": False},
}
