"""Chat export to a spreadsheet (docs/export.md): xlsx and csv, streamed, audited.

- :mod:`.service` decides who may export, names the file, audits, and streams it;
- :mod:`.timeline` walks the chat in time order and folds edits, reactions and deletions;
- :mod:`.people` names senders and their roles; :mod:`.rows` is the row model;
- :mod:`.xlsx` and :mod:`.csvfile` write the formats; :mod:`.cells` keeps cells inert.
"""

from .service import (
    ChatExport,
    ExportedFile,
    ExportService,
    ExportStats,
    Requester,
    Window,
)

__all__ = [
    "ChatExport",
    "ExportService",
    "ExportStats",
    "ExportedFile",
    "Requester",
    "Window",
]
