"""CORS for the provisioning API: portal pages on the origins of ``provisioning.cors_origins``
may call the user routes from a browser with the user's Matrix access token.

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin is answered
here, before routing; other requests from a listed origin get ``Access-Control-Allow-Origin``
for that origin alone (never ``*``), so the browser lets the page read every answer, errors
included (a ``401`` is how a page learns that its session ended). An origin that is not listed
gets no CORS headers at all: the browser keeps the answer from the page.

The shared secret is the portal backend's and never belongs in a browser: a request that carries
an ``Origin`` header (every cross-origin request a browser makes does) and the shared secret is
refused with ``403 M_FORBIDDEN`` before anything runs.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from aiohttp import web

from bridge.errors import forbidden

from .http import Handler, error_response

ALLOWED_METHODS = "GET, PUT, POST, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type"
# The export's file name travels in Content-Disposition.
EXPOSED_HEADERS = "Content-Disposition"
PREFLIGHT_MAX_AGE = "600"


def install_cors(app: web.Application, origins: Iterable[str], shared_secret: str) -> None:
    """Answer preflights and refuse the shared secret from browsers (outermost middleware), and
    allow the listed origins on every answer, streamed downloads included."""
    allowed = frozenset(origins)
    secret = shared_secret.encode()

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if origin not in allowed:
                return web.Response(status=204)
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                },
            )
        if _carries_secret(request, secret):
            return error_response(
                forbidden(
                    "The shared secret is for the portal backend's server, never a browser; "
                    "sign the user in with their Matrix access token."
                )
            )
        return await handler(request)

    async def allow_origin(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")

    app.middlewares.insert(0, cors)
    app.on_response_prepare.append(allow_origin)


def _carries_secret(request: web.Request, secret: bytes) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), secret)
