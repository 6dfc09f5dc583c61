"""Does a running Synapse keep profiles private (docs/admin.md#privacy-of-the-directory)?
Two lookups tell.

1. The bot's profile without a token: a private Synapse refuses it (``401``); an answer (the
   profile, or ``404`` before the bot has one: that tells who exists) means
   ``require_auth_for_profile_requests`` is missing.
2. As the bot, the profile of a user who is in no room (nobody is registered under the probe's
   id): a private Synapse refuses it because they share no room (``403``); a ``404`` (no such
   profile) or an answer means ``limit_profile_requests_to_users_who_share_rooms`` is missing.

Both are plain GET requests that change nothing, so the bridge runs them at every start and a
command line check can run them at any time.
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from bridge.privacy import REQUIRE_AUTH, SHARED_ROOMS

# A localpart nobody is registered under (outside the bridge's namespace, which is exclusive).
PROBE_LOCALPART = "practice-bridge-privacy-probe"
DOCS = "docs/admin.md#privacy-of-the-directory"


def _profile_url(base_url: str, user_id: str) -> str:
    return f"{base_url.rstrip('/')}/_matrix/client/v3/profile/{quote(user_id, safe='')}"


async def profile_leaks(
    session: aiohttp.ClientSession,
    base_url: str,
    bot_mxid: str,
    as_token: str,
    *,
    ssl: bool = True,
) -> list[str]:
    """What Synapse at ``base_url`` tells that it should not, one sentence each naming the
    homeserver.yaml setting that stops it; empty when profiles are private. Raises
    ``aiohttp.ClientError`` when Synapse cannot be reached. ``practice-bridge check`` and the
    start-up run it among the other checks of ``appservice.synapse_check``."""
    async with session.get(_profile_url(base_url, bot_mxid), ssl=ssl) as resp:
        anonymous = resp.status
    if anonymous not in (401, 403):
        # Synapse refuses to start with the second setting but not the first: both are missing.
        return [
            f"Synapse shows profiles to anyone without a token (GET /profile/{bot_mxid} without "
            f"one was answered {anonymous}, not 401): set {REQUIRE_AUTH}: true and "
            f"{SHARED_ROOMS}: true in homeserver.yaml ({DOCS})"
        ]
    domain = bot_mxid.split(":", 1)[1]
    stranger = f"@{PROBE_LOCALPART}:{domain}"
    async with session.get(
        _profile_url(base_url, stranger), headers={"Authorization": f"Bearer {as_token}"}, ssl=ssl
    ) as resp:
        shared = resp.status
    if shared == 403:
        return []
    return [
        f"Synapse shows profiles to users who share no room with their owner (GET "
        f"/profile/{stranger} as the bot answered {shared}, not 403): set {SHARED_ROOMS}: "
        f"true in homeserver.yaml ({DOCS})"
    ]
