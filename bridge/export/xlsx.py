"""The xlsx writer: openpyxl's write-only workbook, with the message rows streamed to disk.

openpyxl (``Workbook(write_only=True)``) builds the workbook: the package, styles, the header
row, column widths, the frozen header and the metadata sheet. The message rows are many, and
openpyxl serialises each cell through an XML element tree (about 8,000 rows a second here), so
they are encoded by :class:`RowEncoder` instead: plain ``<row>`` markup with inline strings
(no shared-string table in memory), numbers, and times that use the date style openpyxl
registered. Rows go to a temporary file as each page of the chat arrives; at the end openpyxl
saves the workbook and the rows are spliced into the messages sheet while the package is
copied into the output zip, so memory holds one page of rows at any time.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from datetime import datetime, timedelta, tzinfo
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from .cells import cell_text, fit_xlsx
from .rows import COLUMNS, TIME_COLUMNS, Row, headings

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_UNIX_EPOCH_SERIAL = 25569  # 1970-01-01 as an Excel serial date (1900 date system)
_COPY_CHUNK = 1 << 20
_SHEET_DATA_END = b"</sheetData>"
_T = '<t xml:space="preserve">'


def _xml_text(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r\n", "\n")
        .replace("\r", "\n")
    )


class RowEncoder:
    """``<row>`` markup for a sheet's rows: inline strings, numbers and local times."""

    def __init__(self, zone: tzinfo, time_style: int, first_row: int = 2) -> None:
        self.zone = zone
        self.time_style = time_style
        self.next_row = first_row
        self.letters = [get_column_letter(i + 1) for i in range(len(COLUMNS))]

    def serial(self, ts_ms: int) -> float:
        """Local wall-clock time (whole seconds) as an Excel serial date."""
        seconds = ts_ms // 1000
        offset = datetime.fromtimestamp(seconds, self.zone).utcoffset() or timedelta()
        return (seconds + offset.total_seconds()) / 86400 + _UNIX_EPOCH_SERIAL

    def encode(self, rows: list[Row]) -> bytes:
        parts: list[str] = []
        letters = self.letters
        for row in rows:
            r = self.next_row
            self.next_row += 1
            parts.append(f'<row r="{r}">')
            for col, value in enumerate(row.values()):
                if value is None or value == "":
                    continue
                ref = f"{letters[col]}{r}"
                if col in TIME_COLUMNS:
                    parts.append(
                        f'<c r="{ref}" s="{self.time_style}"><v>{self.serial(value)!r}</v></c>'
                    )
                elif isinstance(value, str):
                    text = _xml_text(fit_xlsx(cell_text(value)))
                    parts.append(f'<c r="{ref}" t="inlineStr"><is>{_T}{text}</t></is></c>')
                else:
                    parts.append(f'<c r="{ref}"><v>{int(value)}</v></c>')
            parts.append("</row>")
        return "".join(parts).encode("utf-8")


class XlsxBook:
    """One export as an xlsx workbook: a messages sheet and a metadata sheet."""

    content_type = CONTENT_TYPE
    extension = "xlsx"

    def __init__(self, zone: tzinfo, zone_name: str) -> None:
        self.wb = Workbook(write_only=True)
        self.sheet = self.wb.create_sheet("Messages")
        self.sheet.freeze_panes = "A2"
        for i, (_, width) in enumerate(COLUMNS, 1):
            self.sheet.column_dimensions[get_column_letter(i)].width = width
        bold = Font(bold=True)
        header = []
        for title in headings(zone_name):
            cell = WriteOnlyCell(self.sheet, value=title)
            cell.font = bold
            header.append(cell)
        self.sheet.append(header)
        probe = WriteOnlyCell(self.sheet, value=datetime(2000, 1, 1))
        probe.number_format = TIME_FORMAT
        probe.alignment = Alignment(horizontal="left")
        self.encoder = RowEncoder(zone, probe.style_id)
        self.rows = tempfile.TemporaryFile()

    def add(self, rows: list[Row]) -> None:
        if rows:
            self.rows.write(self.encoder.encode(rows))

    def finish(self, metadata: list[tuple[str, str]], out: IO[bytes]) -> None:
        """Write the whole workbook to ``out`` (blocking: run it in a thread)."""
        info = self.wb.create_sheet("Chat")
        info.column_dimensions["A"].width = 18
        info.column_dimensions["B"].width = 70
        bold = Font(bold=True)
        for label, value in metadata:
            key = WriteOnlyCell(info, value=cell_text(label))
            key.font = bold
            info.append([key, fit_xlsx(cell_text(value))])
        with tempfile.TemporaryFile() as package:
            self.wb.save(package)
            package.seek(0)
            self._splice(package, out, self.sheet.path.lstrip("/"))

    def _splice(self, package: IO[bytes], out: IO[bytes], sheet_name: str) -> None:
        """Copy openpyxl's package into ``out``, the rows put into the messages sheet."""
        self.rows.flush()
        with (
            zipfile.ZipFile(package) as src,
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as dst,
        ):
            for item in src.infolist():
                data = src.read(item)
                if item.filename != sheet_name:
                    dst.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED)
                    continue
                cut = data.index(_SHEET_DATA_END)
                entry = zipfile.ZipInfo(item.filename, item.date_time)
                entry.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(entry, "w", force_zip64=True) as sheet:
                    sheet.write(data[:cut])
                    self.rows.seek(0)
                    shutil.copyfileobj(self.rows, sheet, _COPY_CHUNK)
                    sheet.write(data[cut:])

    def close(self) -> None:
        self.rows.close()

    def __enter__(self) -> XlsxBook:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
