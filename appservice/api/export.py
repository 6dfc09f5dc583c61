"""GET /chats/{chat_id}/export (docs/export.md): a chat's history as a download.

Everything that can be refused (format, dates, chat, permission) or fail on the homeserver
before the file starts is answered as a JSON error. Once the first bytes are out, a failure can
only cut the download short: the connection is aborted without the end of the chunked body,
so a client never mistakes a partial file for a whole one.
"""

from __future__ import annotations

import logging
from contextlib import aclosing
from urllib.parse import quote

from aiohttp import web

from bridge.export import ExportService, Requester

from .bodies import ExportQuery
from .routing import Call

log = logging.getLogger("practice.api.export")


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266, RFC 5987)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class ExportRoutes:
    def __init__(self, service: ExportService) -> None:
        self.service = service

    async def get_export(self, call: Call[None, ExportQuery]) -> web.StreamResponse:
        request, chat_id, query = call.request, call.path["chat_id"], call.query
        requester = Requester(call.user, call.caller.actor, "api")
        export = await self.service.prepare(requester, chat_id, query.format, query.window)
        async with aclosing(export.chunks()) as chunks:
            # The first chunk exists only once the homeserver has answered (for xlsx: once the
            # whole workbook is built), so a failure until then is still a JSON error.
            first = await anext(chunks, b"")
            response = web.StreamResponse(
                headers={
                    "Content-Type": export.content_type,
                    "Content-Disposition": content_disposition(export.filename),
                    "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff",
                }
            )
            response.enable_chunked_encoding()
            await response.prepare(request)
            try:
                await response.write(first)
                async for chunk in chunks:
                    await response.write(chunk)
            except (ConnectionError, OSError) as e:
                log.info("Export of %s ended early: %s", chat_id, type(e).__name__)
                return response
            except Exception:
                log.exception("Export of %s failed after it started; download cut", chat_id)
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
        return response
