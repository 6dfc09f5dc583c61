"""`make run DEMO=1`: open the Messenger as a demo person on this machine.

Each demo person gets a random code for this run, printed in a link to ``demo.html`` after
``#``: the part of a URL that browsers never send to a server. The page posts the code to
``POST /messenger/demo/session`` and gets a fresh session for that person, which it hands to
the Messenger as a portal would. Codes live as long as the process; nothing is stored. Only
`practice-bridge local --demo` installs this route.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from appservice.api.http import error_response
from bridge.errors import Codes, PracticeError, forbidden

from .serve import MESSENGER_PATH

Mint = Callable[[], Awaitable[dict[str, Any]]]


class DemoSessions:
    def __init__(self) -> None:
        self._people: list[tuple[bytes, str, Mint]] = []

    def add(self, name: str, mint: Mint) -> str:
        """A code for this person; the page turns it into a fresh session."""
        code = secrets.token_urlsafe(18)
        self._people.append((code.encode(), name, mint))
        return code

    def install(self, app: web.Application) -> None:
        app.router.add_post(f"{MESSENGER_PATH}/demo/session", self.session)

    async def session(self, request: web.Request) -> web.Response:
        try:
            code = json.loads(await request.text())["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if not isinstance(code, str):
            return error_response(PracticeError(Codes.BAD_JSON, "Send the code of the link."))
        given = code.encode("utf-8", "surrogateescape")
        for known, name, mint in self._people:
            if hmac.compare_digest(given, known):
                return web.json_response({**await mint(), "name": name})
        return error_response(forbidden("This demo link is not from this run; use a new one."))
