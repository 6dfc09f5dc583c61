"""The practice rules as pure functions: which client events break a room's policy.

The rules module (:mod:`practice_bridge_synapse.rules`) applies them before an event is stored;
the bridge applies the same functions after the fact when the module is absent
(``bridge/rules/posthoc.py``). One copy: reading a policy and measuring a message are the same
code on both sides.

Standard library only: imported by the bridge and inside Synapse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Media messages; their body is a caption only when a separate file name is given (spec: m.image
# etc.).
MEDIA_MSGTYPES = frozenset({"m.image", "m.file", "m.audio", "m.video"})
_EDIT_FALLBACK = "* "

Rule = Literal[
    "message_too_long",
    "direct_chat_disabled",
    "encrypted",
    "state_event",
    "invite",
    "room_created",
]


@dataclass(frozen=True)
class Policy:
    """A room's policy state as the bot wrote it."""

    client_message_limit: int | None
    clients_may_send: bool

    @classmethod
    def from_content(cls, content: Any) -> Policy:
        """Read a policy leniently: a malformed field means "no restriction from it".

        Synapse hands event content over as an immutable mapping, not a dict."""
        content = content if isinstance(content, Mapping) else {}
        limit = content.get("client_message_limit")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            limit = None
        return cls(limit, content.get("clients_may_send") is not False)


def trusted_policy(sender: Any, content: Any, bot: str) -> Policy | None:
    """The policy carried by a policy event, or None when someone other than the bot sent it."""
    return Policy.from_content(content) if sender == bot else None


def _counted_body(content: Any) -> str:
    """The text of a message the limit applies to ("" for file names and non-text)."""
    if not isinstance(content, Mapping):
        return ""
    body = content.get("body")
    if not isinstance(body, str):
        return ""
    if content.get("msgtype") in MEDIA_MSGTYPES:
        filename = content.get("filename")
        if not isinstance(filename, str) or filename == body:
            return ""  # The body is the file's name, not a caption.
    return body


def message_length(content: Any) -> int:
    """The longest text of a message in code points: its body, or for an edit the new body
    (an edit's own ``body`` is the ``* <new text>`` fallback, counted without the marker)."""
    if not isinstance(content, Mapping):
        return 0
    new_content = content.get("m.new_content")
    if isinstance(new_content, Mapping):
        fallback = _counted_body(content)
        if fallback.startswith(_EDIT_FALLBACK):
            fallback = fallback[len(_EDIT_FALLBACK) :]
        return max(len(fallback), len(_counted_body(new_content)))
    return len(_counted_body(content))


def message_rule(event_type: str, content: Any, policy: Policy | None) -> Rule | None:
    """The rule a client's non-state event breaks under ``policy``, if any."""
    if policy is None or event_type == "m.room.redaction":
        return None
    if not policy.clients_may_send:
        return "direct_chat_disabled"
    limit = policy.client_message_limit
    if limit is None:
        return None
    if event_type == "m.room.encrypted":
        return "encrypted"
    if event_type == "m.room.message" and message_length(content) > limit:
        return "message_too_long"
    return None


def state_rule(event_type: str, state_key: str, sender: str, content: Any) -> Rule | None:
    """The rule a client's state event breaks: any state but their own membership."""
    if event_type == "m.room.create":
        return "room_created"
    if event_type == "m.room.member":
        if state_key == sender:
            return None
        if isinstance(content, Mapping) and content.get("membership") == "invite":
            return "invite"
    return "state_event"
