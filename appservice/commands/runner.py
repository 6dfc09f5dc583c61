"""Running one bot command through the domain services, answering in the private room.

A command in a chat is removed from the chat (redacted by the bot) before it runs, so a client
never reads it; the only trace in their room is the effect (a new member, a new name). Refusals
from the domain (:class:`PracticeError`) are answered with their sentence, privately.
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mautrix.types import RoomID

from bridge.chats.actors import Actor, resolve_actor
from bridge.chats.listing import ChatDirectory
from bridge.chats.models import Chat
from bridge.chats.service import ChatService
from bridge.chats.store import ChatStore
from bridge.clock import now_ms
from bridge.constants import is_export_format
from bridge.directory import Client, DirectoryStore, Staff
from bridge.errors import Codes, PracticeError

from . import present
from .export import ChatExporter
from .helptext import HELP
from .parse import (
    INVITED,
    LEAVE,
    Person,
    find_people,
    kind_of,
    person_id,
    split_choice,
)
from .private import PrivateRooms, txn_id
from .store import CommandStore, Job

log = logging.getLogger("practice.commands")

CONFIRM_SECONDS = 300
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_MAX_NAME = 256


def _bad(message: str) -> PracticeError:
    return PracticeError(Codes.BAD_COMMAND, message, 400)


class _Reply:
    """The answers to one command, each with its own transaction id."""

    def __init__(self, private: PrivateRooms, job: Job) -> None:
        self.private = private
        self.job = job
        self.sent = 0

    def _txn(self) -> str:
        self.sent += 1
        return txn_id(self.job.event_id, self.sent)

    async def say(self, text: str, html_text: str | None = None) -> None:
        await self.private.notice(self.job.sender, text, html_text, self._txn())

    async def send(self, content: dict[str, Any]) -> None:
        await self.private.send(self.job.sender, content, self._txn())


Handler = Callable[[Job, Actor, Chat | None, _Reply], Awaitable[None]]


@dataclass(eq=False)
class CommandRunner:
    directory: DirectoryStore
    chats: ChatStore
    service: ChatService
    listing: ChatDirectory
    private: PrivateRooms
    store: CommandStore
    domain: str
    exporter: ChatExporter | None = None

    def __post_init__(self) -> None:
        self.mirror = self.listing.mirror
        self._handlers: dict[str, Handler] = {
            "help": self._help,
            "unknown": self._unknown,
            "share": self._share,
            "add": self._add,
            "pin": self._flag,
            "unpin": self._flag,
            "hide": self._flag,
            "unhide": self._flag,
            "delete": self._delete,
            "confirm": self._confirm,
            "export": self._export,
            "contacts": self._contacts,
            "chat": self._chat,
        }

    async def run(self, job: Job) -> str:
        """Run a job; return its outcome (never message text)."""
        if job.command == LEAVE:
            await self.private.leave(job.room_id)
            return "ok"
        try:
            actor = await resolve_actor(self.directory, job.sender)
        except PracticeError:
            return "ignored:not_staff"
        if actor.staff is None:
            return "ignored:not_staff"
        reply = _Reply(self.private, job)
        if job.command == INVITED:
            return await self._invited(job, reply)
        chat = await self.chats.get(job.room_id)
        if chat is not None:
            await self._hide_command(job)
        handler = self._handlers.get(job.command, self._unknown)
        try:
            await handler(job, actor, chat, reply)
        except PracticeError as e:
            await reply.say(e.message)
            return f"refused:{e.errcode}"
        return "ok"

    async def apologise(self, job: Job) -> None:
        """Tell the sender that their command failed on our side."""
        await self.private.notice(
            job.sender,
            f"Something went wrong with !pb {job.command}; please try again in a moment.",
            None,
            txn_id(job.event_id, 99),
        )

    async def _hide_command(self, job: Job) -> None:
        """Redact the command from the chat: the client never reads it."""
        try:
            await self.private.redact(job.room_id, job.event_id, txn_id(job.event_id, 0))
        except Exception as e:
            log.warning(
                "Could not remove command %d from %s (%s)", job.id, job.room_id, type(e).__name__
            )

    # -- helpers ---------------------------------------------------------------------------

    async def _in_chat(self, job: Job, actor: Actor, chat: Chat | None) -> Chat:
        if chat is None:
            raise _bad(f"Send !pb {job.command} inside the chat it is about.")
        return await self.service.visible_chat(actor, chat.room_id)

    def _link(self, room_id: str) -> str:
        return present.link(room_id, self.domain)

    async def _chat_name(self, chat: Chat) -> str:
        if chat.name:
            return chat.name
        clients = await self.directory.get_clients(chat.practice_id, chat.client_ids)
        names = [clients[c].name for c in chat.client_ids if c in clients]
        return ", ".join(names) or "this chat"

    async def _ref(self, chat: Chat) -> tuple[str, str]:
        """The chat as plain text and as an HTML link."""
        name = await self._chat_name(chat)
        kind = "group" if chat.kind == "group" else "chat with"
        text = f"the {kind} {name}"
        link = html.escape(self._link(chat.room_id))
        return text, f'the {kind} <a href="{link}">{html.escape(name)}</a>'

    async def _active_clients(self, practice_id: str) -> list[Client]:
        return [c for c in await self.directory.list_clients(practice_id) if c.active]

    async def _active_staff(self, practice_id: str) -> list[Staff]:
        return [s for s in await self.directory.list_staff(practice_id) if s.active]

    @staticmethod
    def _one(matches: list[Person], query: str, what: str) -> Person:
        if not matches:
            raise PracticeError(Codes.NO_MATCH, f"No {what} has the id or name “{query}”.", 404)
        if len(matches) > 1:
            listed = ", ".join(f"{p.name} ({kind_of(p)}:{person_id(p)})" for p in matches)
            raise PracticeError(
                Codes.AMBIGUOUS,
                f"More than one {what} fits “{query}”: {listed}. Use the id as shown.",
                409,
            )
        return matches[0]

    # -- commands --------------------------------------------------------------------------

    async def _help(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        await reply.say(HELP)

    async def _unknown(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        await reply.say("That is not a command I know.\n\n" + HELP)

    async def _share(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        chat = await self._in_chat(job, actor, chat)
        if not job.args:
            raise _bad("Name the team member: !pb share <team member>.")
        staff = await self._active_staff(actor.practice_id)
        target = self._one(find_people(job.args, staff=staff), job.args, "team member")
        await self.service.share(actor, chat.room_id, person_id(target))
        text, rich = await self._ref(chat)
        name = target.name
        await reply.say(f"{name} now shares {text}.", f"{html.escape(name)} now shares {rich}.")

    async def _add(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        chat = await self._in_chat(job, actor, chat)
        if not job.args:
            raise _bad("Name who to add: !pb add <client or team member>.")
        clients = await self._active_clients(actor.practice_id)
        staff = await self._active_staff(actor.practice_id)
        person = self._one(
            find_people(job.args, clients=clients, staff=staff), job.args, "client or team member"
        )
        pid = person_id(person)
        members = chat.client_ids if kind_of(person) == "client" else chat.staff_ids
        if pid in members:
            await reply.say(f"{person.name} is already in this chat.")
            return
        client_ids = [pid] if kind_of(person) == "client" else []
        staff_ids = [pid] if kind_of(person) == "staff" else []
        if chat.kind == "direct":
            name = self._group_name(chat, person, clients, staff)
            chat = await self.service.convert(actor, chat.room_id, name, client_ids, staff_ids)
        else:
            chat = await self.service.add_members(actor, chat.room_id, client_ids, staff_ids)
        text, rich = await self._ref(chat)
        who = person.name
        await reply.say(f"Added {who} to {text}.", f"Added {html.escape(who)} to {rich}.")

    @staticmethod
    def _group_name(chat: Chat, person: Person, clients: list[Client], staff: list[Staff]) -> str:
        """The members' names: team first, then clients, the newcomer last."""
        staff_names = {s.staff_id: s.name for s in staff}
        client_names = {c.client_id: c.name for c in clients}
        names = [staff_names[s] for s in chat.staff_ids if s in staff_names]
        names += [client_names[c] for c in chat.client_ids if c in client_names]
        names.append(person.name)
        name = ", ".join(names)
        return name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…"

    async def _flag(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        chat = await self._in_chat(job, actor, chat)
        on = not job.command.startswith("un")
        if job.command.endswith("pin"):
            await self.mirror.set_pinned(actor.user_id, chat.room_id, on)
            done = "Pinned" if on else "Unpinned"
        else:
            await self.mirror.set_hidden(actor.user_id, chat.room_id, on)
            done = "Hid" if on else "Unhid"
        text, rich = await self._ref(chat)
        suffix = " until a new message arrives" if done == "Hid" else ""
        await reply.say(f"{done} {text}{suffix}.", f"{done} {rich}{suffix}.")

    async def _delete(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        chat = await self._in_chat(job, actor, chat)
        self.service.check_may_delete(actor, chat)
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(6))
        expires = now_ms() + CONFIRM_SECONDS * 1000
        await self.store.add_confirmation(job.sender, code, "delete", chat.room_id, expires)
        text, rich = await self._ref(chat)
        ask = (
            "for everyone and for good: its whole history goes. To confirm, send here within "
            f"{CONFIRM_SECONDS // 60} minutes: !pb confirm delete {code}"
        )
        await reply.say(f"Delete {text} {ask}", f"Delete {rich} {html.escape(ask)}")

    async def _confirm(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        parts = job.args.lower().split()
        if len(parts) != 2 or parts[0] != "delete":
            raise _bad("Confirm with the line the bot sent: !pb confirm delete <code>.")
        target = await self.store.take_confirmation(job.sender, parts[1], "delete")
        if target is None:
            raise _bad(
                "This confirmation code is unknown or has expired; send !pb delete in the chat "
                "again."
            )
        doomed = await self.service.visible_chat(actor, target)
        text, _ = await self._ref(doomed)
        await self.service.delete(actor, target)
        await reply.say(f"Deleted {text}.")

    async def _export(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        chat = await self._in_chat(job, actor, chat)
        fmt = job.args.lower() or "xlsx"
        if not is_export_format(fmt):
            raise _bad("Export as xlsx or csv: !pb export [xlsx|csv].")
        if self.exporter is None:
            await reply.say("Export is not available yet.")
            return
        file = await self.exporter.export_chat(actor, chat.room_id, fmt)
        size = file.size if file.size is not None else None
        if size is None and isinstance(file.data, bytes | bytearray):
            size = len(file.data)
        url = await self.private.upload(file.data, file.content_type, file.filename, size)
        text, rich = await self._ref(chat)
        await reply.say(f"The history of {text}:", f"The history of {rich}:")
        info: dict[str, Any] = {"mimetype": file.content_type}
        if size is not None:
            info["size"] = size
        await reply.send(
            {
                "msgtype": "m.file",
                "body": file.filename,
                "filename": file.filename,
                "url": url,
                "info": info,
            }
        )

    async def _contacts(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        answer = present.contacts(await self.listing.contacts(actor), self.domain)
        await reply.say(answer.body, answer.formatted)

    async def _chat(self, job: Job, actor: Actor, chat: Chat | None, reply: _Reply) -> None:
        if not job.args:
            raise _bad("Name the client: !pb chat <client>.")
        clients = await self._active_clients(actor.practice_id)
        query, choice = job.args, None
        matches = find_people(query, clients=clients)
        if not matches:
            head, choice = split_choice(job.args)
            if choice is not None:
                query, matches = head, find_people(head, clients=clients)
        client = self._one(matches, query, "client")
        assert isinstance(client, Client)
        try:
            opened, created = await self.service.start_direct(
                actor,
                client_id=client.client_id,
                staff_id=None,
                chat_id=None,
                create_new=choice == "new",
            )
        except PracticeError as e:
            if e.errcode != Codes.CHOOSE_CHAT:
                raise
            candidates = self._ordered(actor, e.fields.get("candidates") or [])
            if choice is None or choice == "new" or not 1 <= int(choice) <= len(candidates):
                await self._offer(actor, client, candidates, reply)
                return
            opened, created = await self.service.start_direct(
                actor,
                client_id=client.client_id,
                staff_id=None,
                chat_id=candidates[int(choice) - 1]["chat_id"],
                create_new=False,
            )
        if not created:
            # Opening a chat brings it back if it was hidden (as the API does).
            states = await self.chats.user_states(actor.user_id)
            state = states.get(opened.room_id)
            if state is not None and state.hidden_at is not None:
                await self.mirror.set_hidden(actor.user_id, opened.room_id, False)
        what = "New chat" if created else "Your chat"
        link = self._link(opened.room_id)
        name = client.name
        await reply.say(
            f"{what} with {name}: {link}",
            f'{what} with <a href="{html.escape(link)}">{html.escape(name)}</a>',
        )

    @staticmethod
    def _ordered(actor: Actor, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A stable order, so that the number in `!pb chat <client> <n>` means the same chat:
        the caller's own chats first, then by practitioner, then by chat id."""
        me = actor.staff.staff_id if actor.staff else ""
        return sorted(
            candidates,
            key=lambda c: (c["owner_staff_id"] != me, c["owner_staff_id"], c["chat_id"]),
        )

    async def _offer(
        self, actor: Actor, client: Client, candidates: list[dict[str, Any]], reply: _Reply
    ) -> None:
        staff = {s.staff_id: s.name for s in await self.directory.list_staff(actor.practice_id)}
        me = actor.staff.staff_id if actor.staff else ""
        answer = present.candidates(
            client.name, client.client_id, candidates, me, staff, self.domain
        )
        await reply.say(answer.body, answer.formatted)

    # -- membership ------------------------------------------------------------------------

    async def _invited(self, job: Job, reply: _Reply) -> str:
        """A staff member opened a direct chat with the bot: make it their private room."""
        why_not = await self.private.adopt(job.sender, job.room_id)
        if why_not is None:
            await reply.say(HELP)
            return "ok"
        notice = f"I cannot answer commands in this room: {why_not}. I have written to you in a "
        notice += "private room of ours instead."
        await self.private.send_to_room(
            job.room_id,
            "m.room.message",
            {"msgtype": "m.notice", "body": notice},
            txn_id(job.event_id, 0),
        )
        await self.private.leave(RoomID(job.room_id))
        await reply.say(HELP)
        return "refused:not_private"


__all__ = ["CommandRunner", "HELP"]
