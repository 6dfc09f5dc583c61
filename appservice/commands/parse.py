"""Recognising ``!pb ...`` in a message and finding people by id or name.

Pure functions, no I/O: the intake uses :func:`parse_command` inside the pipeline's transaction,
the runner uses :func:`find_people` on directory records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bridge.directory import Client, Staff

PREFIX = "!pb"
#: Longer bodies are not commands (and are never stored).
MAX_COMMAND_LENGTH = 500

# Commands a staff member may send; anything else after "!pb" is answered with help.
CHAT_COMMANDS = ("share", "add", "pin", "unpin", "hide", "unhide", "delete", "export")
PRIVATE_COMMANDS = ("contacts", "chat", "confirm", "help")
COMMANDS = frozenset(CHAT_COMMANDS + PRIVATE_COMMANDS)
UNKNOWN = "unknown"
# Jobs that come from membership events, not from text: they cannot be typed.
INVITED = "@invited"
LEAVE = "@leave"


@dataclass(frozen=True)
class Command:
    name: str
    args: str = ""


def parse_command(content: Any) -> Command | None:
    """The command in an ``m.room.message`` content, or None if it is not one.

    Only plain ``m.text`` messages count: not notices, not edits (an edit re-sends the text),
    not replies (their body starts with the quoted message). ``!pb`` alone asks for help.
    """
    if not isinstance(content, dict) or content.get("msgtype") != "m.text":
        return None
    if "m.new_content" in content:
        return None
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
        return None
    body = content.get("body")
    if not isinstance(body, str) or len(body) > MAX_COMMAND_LENGTH:
        return None
    text = body.strip()
    if text[: len(PREFIX)].lower() != PREFIX:
        return None
    rest = text[len(PREFIX) :]
    if rest and not rest[0].isspace():
        return None  # "!pbx" is not ours
    parts = rest.split(None, 1)
    if not parts:
        return Command("help")
    name = parts[0].lower()
    args = " ".join(parts[1].split()) if len(parts) > 1 else ""
    if name not in COMMANDS:
        return Command(UNKNOWN)
    return Command(name, args)


Person = Client | Staff
Kind = Literal["client", "staff"]


def find_people(
    query: str, *, clients: list[Client] | None = None, staff: list[Staff] | None = None
) -> list[Person]:
    """Records that ``query`` names: an exact id, else a case-insensitive full name.

    ``client:<id or name>`` or ``staff:<id or name>`` looks in one list only. An id wins over a
    name, so that a name shared by two people can always be disambiguated by id.
    """
    query = _unquote(query.strip())
    pools: list[list[Person]] = []
    kind, _, rest = query.partition(":")
    if rest and kind.lower() in ("client", "staff"):
        query = _unquote(rest.strip())
        pools = [list(clients or [])] if kind.lower() == "client" else [list(staff or [])]
    else:
        pools = [list(clients or []), list(staff or [])]
    if not query:
        return []
    everyone = [p for pool in pools for p in pool]
    by_id = [p for p in everyone if person_id(p) == query]
    if by_id:
        return by_id
    folded = query.casefold()
    return [p for p in everyone if p.name.casefold() == folded]


def split_choice(args: str) -> tuple[str, str | None]:
    """``"Anna Smith 2"`` -> ``("Anna Smith", "2")``; ``"Anna new"`` -> ``("Anna", "new")``."""
    head, _, last = args.rpartition(" ")
    if head and (last.isdigit() or last.lower() == "new"):
        return head, last.lower()
    return args, None


def kind_of(person: Person) -> Kind:
    return "client" if isinstance(person, Client) else "staff"


def person_id(person: Person) -> str:
    return person.client_id if isinstance(person, Client) else person.staff_id


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text
