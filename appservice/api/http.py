"""Request parsing, validation and Matrix-style errors for the provisioning API.

Every malformed request becomes a :class:`PracticeError` (4xx with an errcode). A failing
homeserver is a 502, a database that cannot be used right now (unreachable, restarting, full,
read-only) a 503 ``ORG.PRACTICEBRIDGE.STORAGE_UNAVAILABLE``; anything else that escapes a handler
is logged and answered with a generic M_UNKNOWN, never a stack trace.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from aiohttp import web
from mautrix.errors import MatrixError

from bridge.constants import ID_PATTERN
from bridge.db import storage_unavailable
from bridge.errors import Codes, PracticeError, bad_json, invalid_param, missing_param

log = logging.getLogger("practice.api")

MAX_BODY_BYTES = 64 * 1024
_ID_RE = re.compile(ID_PATTERN)
_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK_RE = re.compile(r"[\t\n\r\u2028\u2029]")
T = TypeVar("T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


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
        return web.json_response(
            {
                "errcode": Codes.UNKNOWN,
                "error": "The homeserver did not complete the request; try again.",
            },
            status=502,
        )
    except Exception as e:
        if storage_unavailable(e):
            # The type only: a database error's text can quote the values of a statement.
            log.error(
                "The database failed in %s %s: %s", request.method, request.path, type(e).__name__
            )
            return web.json_response(
                {
                    "errcode": Codes.STORAGE_UNAVAILABLE,
                    "error": "The bridge cannot use its database right now; try again shortly.",
                },
                status=503,
            )
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return web.json_response(
            {"errcode": Codes.UNKNOWN, "error": "The bridge could not complete the request."},
            status=500,
        )


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large()
    raw = bytearray()
    try:
        # read(n) returns what has arrived so far, so read until the end or past the limit.
        while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(raw)):
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise _too_large()
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
        raise PracticeError(Codes.BAD_JSON, "The request body must be a JSON object.", 400)
    return body


def _too_large() -> PracticeError:
    return PracticeError(
        Codes.TOO_LARGE, f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.", 413
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class Body:
    """Typed access to a JSON object's fields, each failure naming the field."""

    def __init__(self, data: dict[str, Any], max_text: int = 4096) -> None:
        self.data = data
        self.max_text = max_text

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.data or self.data[name] is None:
            if required:
                raise missing_param(name)
            return None
        return self.data[name]

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        max_len: int | None = None,
        allow_empty: bool = False,
        single_line: bool = False,
    ) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid_param(name, f"'{name}' must be a string.")
        limit = max_len or self.max_text
        if len(value) > limit:
            raise invalid_param(name, f"'{name}' is longer than {limit} characters.")
        if _CONTROL_RE.search(value) or (single_line and _LINE_BREAK_RE.search(value)):
            raise invalid_param(name, f"'{name}' contains control characters.")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise invalid_param(name, f"'{name}' is not valid Unicode text.") from None
        if not allow_empty and not value.strip():
            raise invalid_param(name, f"'{name}' must not be empty.")
        return value

    def req_text(self, name: str, *, max_len: int | None = None, single_line: bool = False) -> str:
        value = self.text(name, required=True, max_len=max_len, single_line=single_line)
        assert value is not None
        return value

    def email(self, name: str) -> str:
        value = self.req_text(name, max_len=254, single_line=True)
        if not _EMAIL_RE.fullmatch(value):
            raise invalid_param(name, f"'{name}' must be an email address.")
        return value

    def boolean(self, name: str, *, required: bool = True, default: bool = False) -> bool:
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_param(name, f"'{name}' must be true or false.")
        return value

    def choice(self, name: str, choices: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if value not in choices:
            raise invalid_param(name, f"'{name}' must be one of {', '.join(choices)}.")
        return str(value)

    def ident(self, name: str, *, required: bool = True) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        return check_id(name, value)

    def timezone(self, name: str) -> str:
        value = self.req_text(name, max_len=64, single_line=True)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid_param(
                name, f"'{name}' must be an IANA time zone such as 'Europe/Berlin'."
            ) from None
        return value


def check_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise invalid_param(name, f"'{name}' must be 1-64 letters, digits, '.', '_' or '-'.")
    return value


def path_id(request: web.Request, name: str) -> str:
    return check_id(name, request.match_info.get(name))
