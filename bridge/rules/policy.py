"""What the bridge tells a client whose event it removed after the fact.

The rules themselves (reading a policy, measuring a message, which rule an event breaks) are
shared with the Synapse module: ``practice_bridge_synapse.policy``.
"""

from __future__ import annotations

from bridge.errors import Codes


def explanation(rule: str, max_length: int | None) -> tuple[str, str]:
    """The errcode and the sentence that tells the sender what happened (never their text)."""
    if rule == "message_too_long":
        return (
            Codes.MESSAGE_TOO_LONG,
            "your message was removed because it is longer than the practice allows "
            f"({max_length} characters at most).",
        )
    if rule == "event_not_allowed":
        return (
            Codes.EVENT_NOT_ALLOWED,
            "your message was removed because this kind of message cannot be sent in the "
            "practice's chats.",
        )
    if rule == "direct_chat_disabled":
        return (
            Codes.DIRECT_CHAT_DISABLED,
            "your message was removed because direct messages to the practice are turned off "
            "for you in this chat.",
        )
    if rule == "encrypted":
        return (
            Codes.FORBIDDEN,
            "your encrypted message was removed because this chat does not take encrypted "
            "messages.",
        )
    if rule == "invite":
        return (
            Codes.FORBIDDEN,
            "your invitation was withdrawn because only the practice adds people to chats.",
        )
    return (
        Codes.FORBIDDEN,
        "your change to this chat's settings was removed because clients cannot change them.",
    )
