"""The provisioning API as an aiohttp sub-application mounted under ``provisioning.prefix``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from .http import error_middleware

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


class RouteGroup(Protocol):
    def register(self, router: web.UrlDispatcher, prefix: str) -> None: ...


def load_openapi(prefix: str) -> dict[str, Any]:
    with open(OPENAPI_PATH) as f:
        doc: dict[str, Any] = json.load(f)
    doc["servers"] = [{"url": prefix}]
    return doc


def build_api_app(prefix: str, groups: list[RouteGroup]) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    for group in groups:
        group.register(app.router, "")
    document = load_openapi(prefix)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
    return app
