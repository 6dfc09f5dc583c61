"""The provisioning API as an aiohttp sub-application mounted under ``provisioning.prefix``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.directory import DirectoryStore

from .auth import Authenticator
from .http import error_middleware
from .routing import Call, Route, register

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def load_openapi(prefix: str) -> dict[str, Any]:
    with open(OPENAPI_PATH) as f:
        doc: dict[str, Any] = json.load(f)
    doc["servers"] = [{"url": prefix}]
    return doc


class MetaRoutes:
    """About the API: its document, as written by ``make openapi``."""

    def __init__(self, prefix: str) -> None:
        self.document = load_openapi(prefix)

    async def get_openapi(self, call: Call[None, None]) -> web.Response:
        return web.json_response(self.document)


def build_api_app(
    prefix: str,
    routes: Sequence[Route],
    groups: Sequence[object],
    auth: Authenticator,
    directory: DirectoryStore,
    middlewares: Sequence[Any] = (),
) -> web.Application:
    """The API app: ``routes`` with their handlers on ``groups`` (see routing.register), behind
    the error middleware and then ``middlewares`` (CORS, metrics...)."""
    app = web.Application(middlewares=[error_middleware, *middlewares])
    register(app.router, routes, [*groups, MetaRoutes(prefix)], auth, directory)
    return app
