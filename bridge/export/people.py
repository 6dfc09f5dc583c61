"""Who sent a message, as the practice names them: name, role, and on whose behalf.

A family's sub-records never have an account: their chats have the primary's account as the
member, so a message from that account in a sub-record's chat is a family member writing on
behalf of the sub-record (docs/architecture.md#identities).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mautrix.types import UserID

from bridge.chats.models import Chat
from bridge.directory import Client, DirectoryStore, Staff

ROLE_LABELS = {"owner": "owner", "practitioner": "practitioner", "team_member": "team member"}
BOT_ROLE = "practice bot"


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    role: str
    on_behalf_of: str = ""


@dataclass(eq=False)
class SenderBook:
    """Looks each sender up once per export; a chat has few senders however long it is."""

    directory: DirectoryStore
    chat: Chat
    subjects: dict[str, Client]
    bot: UserID
    bot_name: str
    _known: dict[str, Person] = field(default_factory=dict, init=False)

    @classmethod
    async def for_chat(
        cls, directory: DirectoryStore, chat: Chat, bot: UserID, bot_name: str
    ) -> SenderBook:
        subjects = await directory.get_clients(chat.practice_id, sorted(chat.client_ids))
        return cls(directory, chat, subjects, bot, bot_name)

    async def get(self, user_id: str) -> Person:
        person = self._known.get(user_id)
        if person is None:
            person = await self._look_up(user_id)
            self._known[user_id] = person
        return person

    async def _look_up(self, user_id: str) -> Person:
        if user_id == self.bot:
            return Person(self.bot_name, BOT_ROLE)
        staff = await self.directory.get_staff_by_user(user_id)
        if staff is not None and staff.practice_id == self.chat.practice_id:
            return self.staff_person(staff)
        client = await self.directory.get_client_by_user(user_id)
        if client is not None and client.practice_id == self.chat.practice_id:
            return self.client_person(client)
        return Person(user_id, "")

    @staticmethod
    def staff_person(staff: Staff) -> Person:
        return Person(staff.name, ROLE_LABELS.get(staff.role, staff.role))

    def client_person(self, client: Client) -> Person:
        if client.client_id in self.chat.client_ids:
            return Person(client.name, "client")
        family = [
            c.name
            for cid, c in sorted(self.subjects.items())
            if c.family_primary_id == client.client_id
        ]
        if family:
            return Person(client.name, "family member", ", ".join(family))
        return Person(client.name, "client")
