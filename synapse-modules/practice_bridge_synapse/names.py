"""Names the bridge and its Synapse modules agree on: the state events the bot writes in every
chat, and where the rules module answers which rules it enforces.

Standard library only: imported by the bridge and inside Synapse.
"""

from __future__ import annotations

from typing import Final

# State events the bot writes in every chat (only the bot's count).
CHAT_STATE: Final = "org.practicebridge.chat"
POLICY_STATE: Final = "org.practicebridge.policy"

# Devices the bridge makes in portal users' accounts: each portal session's (this prefix, then
# random) and the one it reads a user's tags with. A sign-in with a password or single sign-on
# may not name one (the logins module), so no app session hides among them.
PORTAL_DEVICE_PREFIX: Final = "PBPORTAL_"
CHAT_LIST_DEVICE: Final = "PRACTICEBRIDGE"

# The modules' self-descriptions (which module, version, bot; the rules module's rules).
PROBE_PATH: Final = "/_synapse/client/org.practicebridge/module"
MEDIA_PROBE_PATH: Final = "/_synapse/client/org.practicebridge/media"
MODULE_NAME: Final = "practice-bridge"

# Where the modules report refusals to the bridge (``PUT`` + a refusal id, with the hs_token),
# on the appservice's listener.
REFUSALS_PATH: Final = "/_matrix/app/unstable/org.practicebridge/refusals/"
