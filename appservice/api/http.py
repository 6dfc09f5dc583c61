"""Reading request bodies, and Matrix-style errors for the provisioning API.

Every malformed request becomes a :class:`PracticeError` (4xx with an errcode). A failing
homeserver is a 502, a database that cannot be used right now (unreachable, restarting, full,
read-only) a 503 ``ORG.PRACTICEBRIDGE.STORAGE_UNAVAILABLE``; anything else that escapes a handler
is logged and answered with a generic M_UNKNOWN, never a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from mautrix.errors import MatrixError

from bridge.db import storage_unavailable
from bridge.errors import Codes, PracticeError, bad_json

log = logging.getLogger("practice.api")

MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=compact_json(data), status=status, headers=headers, content_type="application/json"
    )


def compact_json(data: Any) -> bytes:
    """UTF-8 JSON without spaces (orjson: a list of thousands of chats or contacts is written
    in a few milliseconds, several times quicker than the json module)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # (an integer beyond 64 bits, say): the json module can
        return json.dumps(data, separators=(",", ":")).encode()


def error_response(err: PracticeError) -> web.Response:
    return web.json_response(err.to_json(), status=err.http_status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PracticeError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/json":
            errcode = {404: Codes.UNRECOGNIZED, 405: Codes.UNRECOGNIZED, 413: Codes.TOO_LARGE}.get(
                e.status, Codes.UNKNOWN
            )
            headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
            return web.json_response(
                {"errcode": errcode, "error": e.reason}, status=e.status, headers=headers
            )
        raise
    except (TimeoutError, MatrixError, aiohttp.ClientError) as e:
        log.warning(
            "Homeserver failure in %s %s: %s", request.method, request.path, type(e).__name__
        )
        return error_response(homeserver_failed())
    except Exception as e:
        if storage_unavailable(e):
            # The type only: a database error's text can quote the values of a statement.
            log.error(
                "The database failed in %s %s: %s", request.method, request.path, type(e).__name__
            )
            return error_response(database_unavailable())
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return web.json_response(
            {"errcode": Codes.UNKNOWN, "error": "The bridge could not complete the request."},
            status=500,
        )


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large()
    raw = bytearray()
    try:
        # read(n) returns what has arrived so far, so read until the end or past the limit.
        while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(raw)):
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise too_large()
    except (ValueError, OSError) as e:
        raise bad_json("The request body could not be read.") from e
    if not raw.strip():
        raise bad_json("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # JSONDecodeError and UnicodeDecodeError are ValueErrors, and so are NaN, Infinity
        # and integers too long to convert; RecursionError is nesting too deep to parse.
        raise bad_json() from None
    if not isinstance(body, dict):
        raise not_an_object()
    return body


def not_an_object() -> PracticeError:
    return PracticeError(Codes.BAD_JSON, "The request body must be a JSON object.", 400)


def homeserver_failed() -> PracticeError:
    return PracticeError(
        Codes.UNKNOWN, "The homeserver did not complete the request; try again.", 502
    )


def database_unavailable() -> PracticeError:
    return PracticeError(
        Codes.STORAGE_UNAVAILABLE,
        "The bridge cannot use its database right now; try again shortly.",
        503,
    )


def too_large() -> PracticeError:
    return PracticeError(
        Codes.TOO_LARGE, f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.", 413
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
