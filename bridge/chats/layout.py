"""What a chat room looks like (docs/chats.md): power levels, join rules, chat and policy state."""

from __future__ import annotations

from typing import Any

from mautrix.types import UserID

from bridge.constants import CHAT_STATE, POLICY_STATE
from bridge.directory import Client, Practice
from bridge.settings.model import PracticeSettings

from .models import Chat

BOT_LEVEL = 100
STAFF_LEVEL = 50
# Room version 12: the creator (the bot) stands above every power level and is not listed in
# `users`; everything that needs level 100 is therefore the bot's alone.
ROOM_VERSION = "12"


def power_levels(staff_users: list[UserID]) -> dict[str, Any]:
    """Bot on top (creator), staff 50 (may pin), clients 0; only the bot invites, kicks, names
    and writes state other than pins."""
    users: dict[str, int] = {user: STAFF_LEVEL for user in staff_users}
    return {
        "users": users,
        "users_default": 0,
        "events_default": 0,
        "state_default": BOT_LEVEL,
        "invite": BOT_LEVEL,
        "kick": BOT_LEVEL,
        "ban": BOT_LEVEL,
        "redact": BOT_LEVEL,
        "events": {
            "m.room.pinned_events": STAFF_LEVEL,
            "m.room.name": BOT_LEVEL,
            "m.room.topic": BOT_LEVEL,
            "m.room.avatar": BOT_LEVEL,
            "m.room.power_levels": BOT_LEVEL,
            "m.room.history_visibility": BOT_LEVEL,
            "m.room.canonical_alias": BOT_LEVEL,
            "m.room.encryption": BOT_LEVEL,
            "m.room.server_acl": BOT_LEVEL,
            "m.room.tombstone": BOT_LEVEL,
            CHAT_STATE: BOT_LEVEL,
            POLICY_STATE: BOT_LEVEL,
            "m.room.redaction": 0,
            "m.reaction": 0,
        },
        "notifications": {"room": BOT_LEVEL},
    }


def chat_state(chat: Chat, subjects: list[Client]) -> dict[str, Any]:
    """The chat state event: practice, kind, owner, subject records, shares."""
    return {
        "practice_id": chat.practice_id,
        "kind": chat.kind,
        "name": chat.name,
        "owner_staff_id": chat.owner_staff_id,
        "staff_ids": sorted(chat.staff_ids),
        "shared_with_staff_ids": sorted(chat.shared_staff_ids),
        "subject_client_ids": sorted(chat.client_ids),
        "subjects": [
            {
                "client_id": c.client_id,
                "name": c.name,
                "family_primary_id": c.family_primary_id,
            }
            for c in sorted(subjects, key=lambda c: c.client_id)
        ],
    }


def policy_state(
    chat: Chat, practice: Practice, client_users: list[UserID], clients_may_send: bool
) -> dict[str, Any]:
    """The policy the Synapse module enforces and frontends read (the character counter)."""
    return {
        "client_user_ids": sorted(set(client_users)),
        "client_message_limit": PracticeSettings.read(practice.settings).client_message_limit,
        "kind": chat.kind,
        "clients_may_send": clients_may_send,
    }


def initial_state(chat_content: dict[str, Any], policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
        {
            "type": "m.room.history_visibility",
            "state_key": "",
            "content": {"history_visibility": "shared"},
        },
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
        {"type": CHAT_STATE, "state_key": "", "content": chat_content},
        {"type": POLICY_STATE, "state_key": "", "content": policy},
    ]


def create_room_body(
    *,
    name: str | None,
    is_direct: bool,
    initial_state: list[dict[str, Any]],
    power_levels: dict[str, Any],
    invitees: list[UserID],
    room_version: str = ROOM_VERSION,
) -> dict[str, Any]:
    """The bot's ``POST /createRoom`` for a chat: private, by invitation only.
    https://spec.matrix.org/v1.11/client-server-api/#post_matrixclientv3createroom"""
    body: dict[str, Any] = {
        "visibility": "private",
        "room_version": room_version,
        "preset": "private_chat",
        "is_direct": is_direct,
        "invite": list(invitees),
        "initial_state": initial_state,
        "power_level_content_override": power_levels,
    }
    if name:
        body["name"] = name
    return body
