"""One row per message: what an export says about it, whichever format it is written in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

#: Column headings and widths (in characters); the time heading names the practice's zone.
COLUMNS: tuple[tuple[str, int], ...] = (
    ("#", 7),
    ("Time ({zone})", 20),
    ("Sender", 22),
    ("Role", 14),
    ("On behalf of", 18),
    ("Type", 11),
    ("Text", 60),
    ("Attachment", 24),
    ("Size (bytes)", 12),
    ("Link", 40),
    ("In reply to", 40),
    ("Reactions", 16),
    ("Edited", 20),
    ("Deleted", 20),
    ("Automatic reply", 10),
    ("Event ID", 24),
)
TIME_COLUMNS = (1, 12, 13)


def headings(zone: str) -> list[str]:
    return [name.format(zone=zone) for name, _ in COLUMNS]


@dataclass(slots=True)
class Row:
    number: int
    ts: int  # ms since the epoch
    event_id: str
    sender: str
    role: str
    on_behalf_of: str
    kind: str
    text: str = ""
    attachment: str = ""
    size: int | None = None
    link: str = ""
    reply_to: str = ""
    reactions: str = ""
    edited_ts: int | None = None
    deleted_ts: int | None = None
    auto_reply: bool = False

    def values(self) -> list[Any]:
        """The cells in column order: text, ints, None for empty, ms timestamps as ints
        (in the time columns; a writer turns them into local times)."""
        return [
            self.number,
            self.ts,
            self.sender,
            self.role,
            self.on_behalf_of,
            self.kind,
            self.text,
            self.attachment,
            self.size,
            self.link,
            self.reply_to,
            self.reactions,
            self.edited_ts,
            self.deleted_ts,
            "yes" if self.auto_reply else "",
            self.event_id,
        ]


def local_time(ts: int, zone: tzinfo) -> datetime:
    """The practice's wall-clock time of a timestamp, without the zone (as spreadsheets hold
    times); the heading of the column names the zone."""
    return datetime.fromtimestamp(ts / 1000, zone).replace(tzinfo=None)
