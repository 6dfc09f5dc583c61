"""Prometheus on HTTP: the metrics listener, and the provisioning API's per-route counts.

The listener (``metrics.enabled``, ``metrics.listen_address``, ``metrics.listen_port``: the
mautrix bridges' convention) serves ``GET /metrics`` in Prometheus' text format on an address of
its own, away from the API. The middleware counts every API request by method, the matched
route's template (``/chats/{chat_id}/pin``, never the path itself: ids must not become label
values) and status, and times it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.metrics import Metrics, Sampler

log = logging.getLogger("practice.metrics")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
# A request whose caller went away before the answer (nginx's word for it).
_CLIENT_GONE = 499


def route_label(request: web.Request, prefix: str) -> str:
    """The template of the route that served a request, without the API's prefix; "unmatched"
    for a path no route has."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    template = resource.canonical
    return template[len(prefix) :] if template.startswith(prefix) else template


def api_metrics(metrics: Metrics, prefix: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The API's outermost middleware: count and time each request by route and status."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        except asyncio.CancelledError:
            status = _CLIENT_GONE
            raise
        finally:
            method = request.method if request.method in _METHODS else "other"
            route = route_label(request, prefix)
            metrics.api_requests.labels(method, route, str(status)).inc()
            metrics.api_latency.labels(method, route).observe(time.perf_counter() - started)

    return observe


class MetricsServer:
    """``GET /metrics`` on its own listener; the database's figures are read as it is asked."""

    def __init__(self, metrics: Metrics, sampler: Sampler, host: str, port: int) -> None:
        self.metrics = metrics
        self.sampler = sampler
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _scrape(self, request: web.Request) -> web.Response:
        await self.sampler.refresh()
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )
