"""How the bot writes its answers: plain text for every Matrix app, HTML with links for those
that show it. Pure functions over what the services return; names are escaped in HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

#: At most this many entries per section of a list (an event is at most 64 KiB).
LIST_LIMIT = 100


def link(room_id: str, domain: str) -> str:
    """A matrix.to link to a room (spec: Appendices, matrix.to navigation)."""
    return f"https://matrix.to/#/{quote(room_id, safe='!')}?via={quote(domain)}"


def anchor(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


@dataclass
class Answer:
    """A notice being written: each piece added as plain text and as HTML."""

    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def line(self, text: str, html: str | None = None) -> None:
        self.text.append(text)
        self.html.append(f"<p>{html if html is not None else escape(text)}</p>")

    def items(self, title: str, entries: list[tuple[str, str]], ordered: bool = False) -> None:
        """A titled list; ``entries`` are (text, html) pairs, cut at :data:`LIST_LIMIT`."""
        tag = "ol" if ordered else "ul"
        self.text.append(title)
        self.html.append(f"<p>{escape(title)}</p><{tag}>")
        for n, (text, html) in enumerate(entries[:LIST_LIMIT], start=1):
            self.text.append(f"  {n}. {text}" if ordered else f"  • {text}")
            self.html.append(f"<li>{html}</li>")
        if len(entries) > LIST_LIMIT:
            more = f"… and {len(entries) - LIST_LIMIT} more"
            self.text.append(f"  {more}")
            self.html.append(f"<li>{escape(more)}</li>")
        self.html.append(f"</{tag}>")

    @property
    def body(self) -> str:
        return "\n".join(self.text)

    @property
    def formatted(self) -> str:
        return "".join(self.html)


def contacts(data: dict[str, Any], domain: str) -> Answer:
    """``!pb contacts``: the team, the groups, the clients with their family members."""
    answer = Answer()
    team = [
        (
            f"{s['name']} (staff:{s['staff_id']}, {s['role'].replace('_', ' ')})",
            f"{escape(s['name'])} (staff:{escape(s['staff_id'])}, "
            f"{escape(s['role'].replace('_', ' '))})",
        )
        for s in data["team_members"]
    ]
    groups = [
        (g["name"] or "unnamed group", anchor(link(g["chat_id"], domain), g["name"] or "group"))
        for g in data["groups"]
    ]
    clients: list[tuple[str, str]] = []
    for c in data["clients"]:
        clients.append(_client(c, domain))
        for member in c.get("family_members", []):
            text, html = _client(member, domain)
            clients.append((f"↳ {text}", f"↳ {html}"))
    answer.items(f"Team ({len(team)}):", team)
    answer.items(f"Groups ({len(groups)}):", groups)
    answer.items(f"Clients ({len(data['clients'])}):", clients)
    answer.line(
        "Open a client's chat with !pb chat <client>.",
        "Open a client's chat with <code>!pb chat &lt;client&gt;</code>.",
    )
    return answer


def _client(c: dict[str, Any], domain: str) -> tuple[str, str]:
    note = "" if c["can_message"] else ", no portal account"
    text = f"{c['name']} (client:{c['client_id']}{note})"
    html = f"{escape(c['name'])} (client:{escape(c['client_id'])}{note})"
    chats = c.get("chats") or []
    if chats:
        text += f" – {len(chats)} chat{'s' if len(chats) != 1 else ''}"
        html += " – " + ", ".join(
            anchor(link(ref["chat_id"], domain), ref["name"] or ref["kind"]) for ref in chats[:5]
        )
    return text, html


def candidates(
    client_name: str,
    client_id: str,
    chats: list[dict[str, Any]],
    me: str,
    staff_names: dict[str, str],
    domain: str,
) -> Answer:
    """``!pb chat`` when more than one 1:1 chat fits: numbered, in the order given."""
    entries = []
    for c in chats:
        owner = c["owner_staff_id"]
        whose = "your chat" if owner == me else f"{staff_names.get(owner, owner)}'s chat"
        if me in c.get("shared_with_staff_ids", []):
            whose += ", shared with you"
        entries.append((whose, anchor(link(c["chat_id"], domain), whose)))
    answer = Answer()
    answer.items(f"There is more than one 1:1 chat with {client_name}:", entries, ordered=True)
    answer.line(
        f"Send !pb chat {client_id} <number> to open one, "
        f"or !pb chat {client_id} new for a new chat."
    )
    return answer
