"""The list of bot commands: the answer to ``!pb help`` and the first message of a private room
opened for a Matrix app."""

from __future__ import annotations

HELP = """Practice bot commands. Replies come here, never into a client's chat; a command you \
send in a chat is removed from it.

In a chat:
  !pb share <team member> – share this 1:1 chat with a team member
  !pb add <client or team member> – add someone (a 1:1 chat becomes a group)
  !pb pin, !pb unpin – keep the chat at the top of your list
  !pb hide, !pb unhide – hide the chat until a new message arrives
  !pb delete – delete the chat for everyone, for good (asks to confirm)
  !pb export [xlsx|csv] – the chat's history as a file, sent here

Here:
  !pb contacts – your team, groups and clients
  !pb chat <client> – open your 1:1 chat with a client
  !pb help – this list

People are named by id or full name; client:<…> or staff:<…> picks one kind."""

WELCOME = (
    "This is your private room with the practice bot: your chats are in your room list, and "
    "the commands below work here and in them.\n\n" + HELP
)
