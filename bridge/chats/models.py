"""Chats as the practice sees them: a room, its kind, its owner, its staff and client records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mautrix.types import RoomID

from bridge.rows import dataclass_from_row

ChatKind = Literal["direct", "group"]


@dataclass
class Chat:
    room_id: RoomID
    practice_id: str
    kind: ChatKind
    name: str | None
    owner_staff_id: str
    created_at: int = 0
    last_message_ts: int = 0
    last_sender: str | None = None
    deleted: bool = False
    staff_ids: list[str] = field(default_factory=list)
    shared_staff_ids: list[str] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Any) -> Chat:
        return dataclass_from_row(cls, row)

    @property
    def chat_id(self) -> str:
        return self.room_id

    def has_staff(self, staff_id: str) -> bool:
        return staff_id in self.staff_ids

    def summary(self) -> dict[str, Any]:
        """How the chat is named when offered as a choice (the CHOOSE_CHAT candidates)."""
        return {
            "chat_id": self.room_id,
            "kind": self.kind,
            "name": self.name,
            "owner_staff_id": self.owner_staff_id,
            "shared_with_staff_ids": list(self.shared_staff_ids),
            "subject_client_ids": list(self.client_ids),
        }


@dataclass
class UserChatState:
    """One user's state of one chat, mirrored from their Matrix account data and receipts."""

    favourite: bool = False
    marked_unread: bool = False
    hidden_at: int | None = None
    read_ts: int = 0
