"""Transaction intake on mautrix.appservice: authenticate, store, then acknowledge.

Synapse delivers transactions at least once. A transaction is acknowledged only after its events
are committed to the bridge database; if storing fails the answer is an error and Synapse sends
it again. mautrix's own handler would acknowledge even when handling fails, and keeps its
de-duplication in memory, so the transaction route is ours.
"""

from __future__ import annotations

import hmac
import json
import logging
from json import JSONDecodeError
from typing import Any

from aiohttp import web
from mautrix.appservice import AppService

from bridge.events import EventQueue, Pipeline

log = logging.getLogger("practice.intake")


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


class PracticeAppService(AppService):
    """The appservice server: mautrix's, with durable, constant-time-authenticated intake."""

    def __init__(self, *args: Any, queue: EventQueue, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = queue
        self.pipeline = pipeline

    def _check_token(self, request: web.Request) -> bool:
        token = request.rel_url.query.get("access_token")
        if token is None:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return False
            token = header[len("Bearer ") :]
        return hmac.compare_digest(token.encode(), self.hs_token.encode())

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return _error(403, "M_FORBIDDEN", "Invalid or missing hs_token.")
        txn_id = request.match_info["transaction_id"]
        try:
            body = await request.json(loads=json.loads)
        except (JSONDecodeError, UnicodeDecodeError):
            return _error(400, "M_NOT_JSON", "The transaction body is not JSON.")
        if not isinstance(body, dict):
            return _error(400, "M_BAD_JSON", "The transaction body must be a JSON object.")
        events = _list(body.get("events"))
        ephemeral = _list(body.get("ephemeral", body.get("de.sorunome.msc2409.ephemeral")))
        if events is None or ephemeral is None:
            return _error(400, "M_BAD_JSON", "'events' and 'ephemeral' must be lists.")
        try:
            stored = await self.queue.store_transaction(txn_id, events, ephemeral)
        except Exception:
            log.exception("Storing transaction %s failed; not acknowledged", txn_id)
            return _error(503, "M_UNKNOWN", "The bridge could not store the transaction.")
        if stored >= 0:
            log.debug("Stored transaction %s with %d events", txn_id, stored)
            self.pipeline.notify()
        return web.json_response({})


def _list(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return []
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, dict)]
