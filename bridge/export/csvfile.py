"""The csv writer: UTF-8 with a byte order mark (so spreadsheet apps read emoji and non-Latin
text right), RFC 4180 quoting, times in the practice's zone with their UTC offset."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, tzinfo

from .cells import cell_text
from .rows import TIME_COLUMNS, Row, headings

CONTENT_TYPE = "text/csv; charset=utf-8"


class CsvSheet:
    content_type = CONTENT_TYPE
    extension = "csv"

    def __init__(self, zone: tzinfo, zone_name: str) -> None:
        self.zone = zone
        self.zone_name = zone_name

    def header(self) -> bytes:
        return "\ufeff".encode() + self._encode([headings(self.zone_name)])

    def encode(self, rows: list[Row]) -> bytes:
        lines = []
        for row in rows:
            values = row.values()
            for col in TIME_COLUMNS:
                if values[col] is not None:
                    values[col] = self.time(values[col])
            lines.append(
                [cell_text(v) if isinstance(v, str) else ("" if v is None else v) for v in values]
            )
        return self._encode(lines)

    def time(self, ts_ms: int) -> str:
        return datetime.fromtimestamp(ts_ms // 1000, self.zone).isoformat(" ")

    @staticmethod
    def _encode(lines: Sequence[Sequence[object]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(lines)
        return buffer.getvalue().encode("utf-8")
