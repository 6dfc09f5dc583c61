"""Directory records as small dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mautrix.types import UserID

from bridge.rows import dataclass_from_row

Role = Literal["owner", "practitioner", "team_member"]
ROLES: tuple[Role, ...] = ("owner", "practitioner", "team_member")


@dataclass
class Practice:
    practice_id: str
    name: str
    plan: str
    timezone: str
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Practice:
        return dataclass_from_row(cls, row, settings=json.loads(row["settings"] or "{}"))

    def to_json(self) -> dict[str, Any]:
        return {
            "practice_id": self.practice_id,
            "name": self.name,
            "plan": self.plan,
            "timezone": self.timezone,
        }


@dataclass
class Staff:
    practice_id: str
    staff_id: str
    user_id: UserID
    name: str
    email: str
    role: Role
    active: bool = True
    updated_at: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Staff:
        return dataclass_from_row(cls, row)

    def to_json(self) -> dict[str, Any]:
        return {
            "practice_id": self.practice_id,
            "staff_id": self.staff_id,
            "user_id": self.user_id,
            "name": self.name,
            "email": self.email,
            "role": self.role,
            "active": self.active,
        }


@dataclass
class Client:
    practice_id: str
    client_id: str
    user_id: UserID
    name: str
    email: str
    activated: bool
    portal_access: bool
    family_primary_id: str | None = None
    direct_chat_access: bool = True
    active: bool = True
    updated_at: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Client:
        return dataclass_from_row(cls, row)

    @property
    def is_sub_record(self) -> bool:
        return self.family_primary_id is not None

    @property
    def has_account(self) -> bool:
        """Whether this record may hold a Matrix account and sessions right now."""
        return self.active and self.activated and self.portal_access and not self.is_sub_record

    def to_json(self) -> dict[str, Any]:
        return {
            "practice_id": self.practice_id,
            "client_id": self.client_id,
            "user_id": None if self.is_sub_record else self.user_id,
            "name": self.name,
            "email": self.email,
            "activated": self.activated,
            "portal_access": self.portal_access,
            "family_primary_id": self.family_primary_id,
            "direct_chat_access": self.direct_chat_access,
            "active": self.active,
        }
