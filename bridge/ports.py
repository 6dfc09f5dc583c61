"""What the domain needs from the homeserver, as a protocol the Matrix adapter implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mautrix.types import UserID


@dataclass(frozen=True)
class MatrixSession:
    user_id: UserID
    access_token: str
    device_id: str


class Homeserver(Protocol):
    base_url: str

    async def ensure_user(self, user_id: UserID, displayname: str | None) -> None:
        """Register a namespace user if needed and set its display name."""

    async def login(self, user_id: UserID, device_name: str) -> MatrixSession:
        """A new access token and device for a namespace user."""

    async def logout_all(self, user_id: UserID) -> int:
        """End every session of a user at once; return how many were ended."""

    async def whoami(self, access_token: str) -> UserID | None:
        """The user an access token belongs to, or None if the homeserver refuses it."""
