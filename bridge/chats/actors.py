"""Who is acting: a staff member or a client account (with the family records it answers for)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mautrix.types import UserID

from bridge.directory import Client, DirectoryStore, Staff
from bridge.directory import refusals as refuse
from bridge.directory.service import DirectoryService


@dataclass
class Actor:
    user_id: UserID
    practice_id: str
    staff: Staff | None = None
    client: Client | None = None
    # Client records this account answers for: its own and its family members' (sub-records).
    client_ids: list[str] = field(default_factory=list)
    # Of those, the records whose direct chat access is off: their 1:1 chats are out of view.
    direct_off: set[str] = field(default_factory=set)

    @property
    def is_staff(self) -> bool:
        return self.staff is not None

    @property
    def is_owner(self) -> bool:
        return self.staff is not None and self.staff.role == "owner"

    @property
    def member_kind(self) -> str:
        return "staff" if self.staff is not None else "client"

    @property
    def member_ids(self) -> list[str]:
        return [self.staff.staff_id] if self.staff is not None else self.client_ids

    def sees(self, kind: str, staff_ids: list[str], client_ids: list[str]) -> bool:
        """Whether a chat with these members is in this user's view."""
        if self.staff is not None:
            return self.staff.staff_id in staff_ids
        mine = [cid for cid in client_ids if cid in self.client_ids]
        if kind == "direct":
            return any(cid not in self.direct_off for cid in mine)
        return bool(mine)


async def resolve_actor(store: DirectoryStore, user_id: UserID) -> Actor:
    """The directory record behind a portal user, refusing users without access."""
    staff = await store.get_staff_by_user(user_id)
    if staff is not None:
        if not staff.active:
            raise refuse.staff_removed()
        return Actor(user_id, staff.practice_id, staff=staff)
    client = await store.get_client_by_user(user_id)
    if client is None:
        raise refuse.unknown_user()
    DirectoryService.check_client_access(client)
    family = await store.list_family(client.practice_id, client.client_id)
    records = [client] + [c for c in family if c.active]
    return Actor(
        user_id,
        client.practice_id,
        client=client,
        client_ids=[c.client_id for c in records],
        direct_off={c.client_id for c in records if not c.direct_chat_access},
    )
