"""Transaction intake on mautrix.appservice: authenticate, store, then acknowledge.

Synapse delivers transactions at least once. A transaction is acknowledged only after its events
are committed to the bridge database; if storing fails the answer is an error and Synapse sends
it again. mautrix's own handler would acknowledge even when handling fails, and keeps its
de-duplication in memory, so the transaction route is ours.

Transactions are stored one at a time and handed to the pipeline in the order they were
committed, so that the pipeline sees sequence numbers in order (Synapse itself sends one
transaction at a time; a concurrent redelivery simply waits its turn).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Annotated, Any

from aiohttp import web
from mautrix.appservice import AppService
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.errors import Codes
from bridge.events import EventQueue, Pipeline
from bridge.events.queue import origin_ts, valid_id
from bridge.metrics import Metrics
from bridge.rules.refused import REFUSALS_PATH, Refusal, RefusalLog, RefusedRule

log = logging.getLogger("practice.intake")

# Synapse sends at most 100 PDUs (64 KiB each at most) and 100 EDUs per transaction.
MAX_TRANSACTION_BYTES = 32 * 1024 * 1024


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


def _forbidden() -> web.Response:
    return _error(403, Codes.FORBIDDEN, "Invalid or missing hs_token.")


_Text = Annotated[str, Field(min_length=1, max_length=255)]


class RefusalReport(BaseModel):
    """A refusal as the Synapse module reports it (``bridge/rules/refused.py``)."""

    model_config = ConfigDict(extra="ignore")
    user_id: _Text
    rule: RefusedRule
    room_id: _Text | None = None
    event_type: _Text | None = None
    msgtype: _Text | None = None


class PracticeAppService(AppService):
    """The appservice server: mautrix's, with durable, constant-time-authenticated intake."""

    def __init__(
        self,
        *args: Any,
        queue: EventQueue,
        pipeline: Pipeline,
        metrics: Metrics | None = None,
        refusals: RefusalLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.queue = queue
        self.pipeline = pipeline
        self.metrics = metrics or Metrics()
        self.refusals = refusals
        self._store_lock = asyncio.Lock()

    def register_routes(self, app: web.Application) -> None:
        super().register_routes(app)
        app.router.add_route("PUT", REFUSALS_PATH + "{refusal_id}", self._http_refusal)

    def _check_token(self, request: web.Request) -> bool:
        token = request.rel_url.query.get("access_token")
        if token is None:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return False
            token = header[len("Bearer ") :]
        return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self.hs_token.encode())

    async def _received(
        self, request: web.Request, key: str, what: str
    ) -> tuple[str, Any] | web.Response:
        """The id in the path and the JSON body of a homeserver's push, or the refusal to send
        back (wrong token, unusable id, unreadable body)."""
        if not self._check_token(request):
            return _forbidden()
        ident = request.match_info[key]
        if not valid_id(ident):
            return _error(400, Codes.INVALID_PARAM, f"The {what} id is not usable.")
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        return ident, body

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        received = await self._received(request, "transaction_id", "transaction")
        if isinstance(received, web.Response):
            return received
        txn_id, body = received
        if not isinstance(body, dict):
            return _error(400, Codes.BAD_JSON, "The transaction body must be a JSON object.")
        events = _list(body.get("events"))
        ephemeral = _list(body.get("ephemeral", body.get("de.sorunome.msc2409.ephemeral")))
        if events is None or ephemeral is None:
            return _error(400, Codes.BAD_JSON, "'events' and 'ephemeral' must be lists.")
        async with self._store_lock:
            try:
                stored = await self.queue.store_transaction(txn_id, events, ephemeral)
            except Exception:
                # Perhaps committed after all: let the pipeline look in the database.
                self.pipeline.notify()
                log.exception("Storing transaction %s failed; not acknowledged", txn_id)
                self.metrics.transactions.labels("refused").inc()
                return _error(503, Codes.UNKNOWN, "The bridge could not store the transaction.")
            self.pipeline.submit(stored)
        offered = sum(1 for ev in events if valid_id(ev.get("event_id"))) + len(ephemeral)
        stamps = [origin_ts(ev.payload) for ev in stored if not ev.ephemeral]
        newest = max((ts for ts in stamps if ts > 0), default=None)
        self.metrics.transaction_stored(len(stored), max(0, offered - len(stored)), newest)
        log.debug("Stored transaction %s: %d new events", txn_id, len(stored))
        return web.json_response({})

    async def _http_refusal(self, request: web.Request) -> web.Response:
        """The Synapse module reports a refusal; stored once per id before the answer, so that
        the module sends it again until it is on record."""
        received = await self._received(request, "refusal_id", "refusal")
        if isinstance(received, web.Response):
            return received
        refusal_id, body = received
        try:
            report = RefusalReport.model_validate(body)
        except ValidationError:
            return _error(400, Codes.BAD_JSON, "The body is not a refusal report.")
        if self.refusals is None:
            return _error(503, Codes.UNKNOWN, "The bridge does not record refusals yet.")
        try:
            await self.refusals.record(Refusal(refusal_id, **report.model_dump()))
        except Exception:
            log.exception("Recording refusal %s failed", refusal_id)
            return _error(503, Codes.UNKNOWN, "The bridge could not record the refusal.")
        return web.json_response({})

    async def _http_ping(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return _forbidden()
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        txn_id = body.get("transaction_id") if isinstance(body, dict) else None
        log.info("Ping from the homeserver (transaction %s)", txn_id)
        return web.json_response({})

    async def _http_query_user(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return _forbidden()
        return await super()._http_query_user(request)

    async def _http_query_alias(self, request: web.Request) -> web.Response:
        if not self._check_token(request):
            return _forbidden()
        return await super()._http_query_alias(request)


async def _read_json(request: web.Request) -> Any:
    """The body as JSON, or the 4xx answer that says why it is not."""
    length = request.content_length
    if length is not None and length > MAX_TRANSACTION_BYTES:
        return _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_TRANSACTION_BYTES:
            return _too_large()
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):  # Not JSON, not UTF-8, or absurdly nested.
        return _error(400, Codes.NOT_JSON, "The body is not JSON.")


def _too_large() -> web.Response:
    limit = MAX_TRANSACTION_BYTES // (1024 * 1024)
    return _error(413, Codes.TOO_LARGE, f"The body is larger than {limit} MiB.")


def _list(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return []
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, dict)]
