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

from .content import REDACTION, off_the_list, written_length
from .errors import Codes

Rule = Literal[
    "event_not_allowed",
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


def message_rule(
    event_type: str, content: Any, policy: Policy | None, *, client: bool = True
) -> Rule | None:
    """The rule a portal user's non-state event breaks in a chat with ``policy`` (None: not a
    practice chat, no rule): the allow-list holds for everyone, direct chat access and the
    length limit for clients (``client``)."""
    if policy is None:
        return None
    if off_the_list(event_type, content, staff=not client) is not None:
        return "event_not_allowed"
    if not client:
        return None
    if not policy.clients_may_send and event_type != REDACTION:
        return "direct_chat_disabled"
    limit = policy.client_message_limit
    if limit is not None and written_length(event_type, content) > limit:
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


MembershipRule = Literal["leave", "join", "profile", "membership"]


def membership_rule(
    sender: str, state_key: str, membership: Any, previous: Any, *, from_session: bool
) -> MembershipRule | None:
    """The rule a portal user's member event in a practice chat breaks, if any.

    Membership is the practice's: the bot invites and removes, and the bridge joins people and
    takes them out as themselves through the appservice (as Synapse does when a chat is
    deleted), never from their own session (``from_session``). From their session a user only
    accepts an invitation: leaving, rejecting it, joining again after a removal, a name or
    picture of their own in the chat (a join over their join) and anything for someone else
    are refused.
    """
    if sender != state_key:
        return "membership"
    if not from_session:
        return None
    if membership == "join":
        if previous == "invite":
            return None
        return "profile" if previous == "join" else "join"
    if membership == "leave":
        return "leave"
    return "join"


# A refused membership or profile change: its errcode, the sentence a portal shows, and the
# rule the audit log names.
MEMBERSHIP_REFUSALS: dict[MembershipRule, tuple[Codes, str, str]] = {
    "leave": (
        Codes.CANNOT_LEAVE_CHAT,
        "Chats are kept by the practice: you cannot leave one, but you can hide it.",
        "leave",
    ),
    "profile": (
        Codes.PROFILE_FROM_DIRECTORY,
        "Names and pictures come from the practice's directory and cannot be changed here.",
        "profile",
    ),
    "join": (Codes.FORBIDDEN, "Only the practice adds people to chats.", "membership"),
    "membership": (
        Codes.FORBIDDEN,
        "Only the practice adds people to chats and takes them out.",
        "membership",
    ),
}
