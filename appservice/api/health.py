"""``GET /health``: whether this bridge process can serve, for load balancers (no token).

``200 {"status": "healthy", "checks": {...}}``, or ``503`` with errcode
``ORG.PRACTICEBRIDGE.UNHEALTHY`` and the same ``checks``: each check's ``ok`` and a short
``reason`` (docs/admin.md#health). Nothing in it is secret.
"""

from __future__ import annotations

from aiohttp import web

from bridge.errors import Codes, PracticeError
from bridge.health import Check, Health

from .http import json_response
from .routing import Call


class HealthRoutes:
    def __init__(self, health: Health) -> None:
        self.health = health

    async def get_health(self, call: Call[None, None]) -> web.Response:
        checks = await self.health.checks()
        if not all(check.ok for check in checks):
            raise unhealthy(checks)
        return json_response({"status": "healthy", "checks": _by_name(checks)})


def unhealthy(checks: list[Check]) -> PracticeError:
    failing = "; ".join(f"{c.name}: {c.reason}" for c in checks if not c.ok)
    return PracticeError(
        Codes.UNHEALTHY,
        f"The bridge cannot serve right now ({failing}).",
        503,
        status="unhealthy",
        checks=_by_name(checks),
    )


def _by_name(checks: list[Check]) -> dict[str, dict[str, object]]:
    return {c.name: {"ok": c.ok, "reason": c.reason} for c in checks}
