"""API capacity of one bridge process: requests per second by route, and the CPU each costs.

Everything runs for real, as deployed: one Synapse with our registration and modules (rate
limits off) and the bridge as its own process (``practice-bridge run``), on SQLite and then on
PostgreSQL when a DSN is given; email on (the outbox is written; nothing is due during the
run). A small practice (an owner, 40 activated clients, 20 direct chats with a message each) is
made through the API first.

What is measured: each route in turn, called by 8 concurrent callers for ``--seconds``, as the
portal backend (shared secret) or the owner's own Matrix session calls it: completed requests
per second, and the CPU time the bridge process and the Synapse process spent per request (from
``/proc``: user + system), which says what a route costs wherever it runs. The baseline is
``GET /health`` in the same run: no token, and its checks answered from a two-second cache,
about the most requests the process can answer; the ratio is the share of it a route gets.
Every route is warmed up first (untimed), after the bridge has processed the set-up's events.
Write routes alternate between two values, so that each request changes something (the pin
set and cleared; the client's name between two spellings). Last, the clients of the chats send
messages through Synapse (the module checks each) and the bridge processes them (intake,
pipeline, unread index, outbox): messages per second Synapse accepts, and the CPU each costs
Synapse and the bridge, read once the bridge's metrics show every one processed. No target: the
figures are for docs/scaling.md; on a shared 2-CPU machine they vary from run to run.

    python bench/api.py [--seconds S] [--postgres DSN] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench._product import call, product_config, running_product  # noqa: E402
from bench.table import script_main  # noqa: E402
from registration.homeserver import free_port  # noqa: E402
from tests.postgres import PG_ENV, postgres_schema  # noqa: E402

CONCURRENCY = 8
SIZE = (40, 20)  # clients, and direct chats among them
SMOKE_SIZE = (4, 2)
PRACTICE = "apibench"
_TICKS = os.sysconf("SC_CLK_TCK")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="per route")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class Route:
    name: str
    calls: Callable[[], Awaitable[Any]]
    # For messages: how many the bridge has processed so far; the CPU is read once it has
    # processed every one sent (its work follows Synapse's answer).
    processed: Callable[[], Awaitable[float]] | None = None


@dataclass
class Figures:
    rate: float
    bridge_ms: float
    synapse_ms: float


async def drive(route: Route, seconds: float, pids: tuple[int, int]) -> Figures:
    """``CONCURRENCY`` callers for ``seconds``: requests per second and CPU ms per request."""
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await route.calls()
            done += 1

    warm_until = time.monotonic() + min(1.0, seconds / 5)
    while time.monotonic() < warm_until:
        await route.calls()
    already = await route.processed() if route.processed else 0
    stop_at = time.monotonic() + seconds
    cpu = [cpu_seconds(pid) for pid in pids]
    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    elapsed = time.monotonic() - started
    if route.processed is not None:
        await _until(route.processed, already + done)
    spent = [
        (cpu_seconds(pid) - before) * 1000 / done for pid, before in zip(pids, cpu, strict=True)
    ]
    return Figures(done / elapsed, spent[0], spent[1])


async def _metric(
    session: aiohttp.ClientSession, url: str, name: str, kind: str | None = None
) -> float:
    """A metric of the bridge (summed over its labels, or those of one ``kind``)."""
    async with session.get(url) as resp:
        text = await resp.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and kind in (None, sample.labels.get("kind"))
    )


async def _until(read: Callable[[], Awaitable[float]], target: float, direction: int = -1) -> None:
    """Until ``read()`` reaches ``target`` (from below; from above with ``direction=1``)."""
    for _ in range(6000):
        if (await read() - target) * direction <= 0:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the bridge did not process every event within five minutes")


async def routes(
    session: aiohttp.ClientSession, base: str, secret: str, size: tuple[int, int], metrics: str
) -> list[Route]:
    """The practice, made through the API; the routes to drive, cheapest first."""
    clients, chats = size
    backend = {"token": secret}

    async def put(path: str, body: Any) -> Any:
        return await call(session, "PUT", base + path, body, **backend)

    await put(f"/practices/{PRACTICE}", {"name": "Bench", "plan": "team", "timezone": "UTC"})
    await put(
        f"/practices/{PRACTICE}/staff/owner",
        {"name": "Owner", "email": "owner@example.com", "role": "owner"},
    )

    def client(n: int, name: str) -> dict[str, Any]:
        email = f"c{n}@example.com"
        return {"name": name, "email": email, "activated": True, "portal_access": True}

    for n in range(clients):
        await put(f"/practices/{PRACTICE}/clients/c{n}", client(n, f"Client {n}"))
    session_url = f"{base}/practices/{PRACTICE}/sessions"
    owner = await call(session, "POST", session_url, {"staff_id": "owner"}, **backend)
    user = {"token": owner["access_token"]}
    rooms, senders = [], []
    for n in range(chats):
        chat = await call(session, "POST", f"{base}/chats/direct", {"client_id": f"c{n}"}, **user)
        rooms.append(chat["chat_id"])
        send = f"{owner['homeserver']}/_matrix/client/v3/rooms/{quote(chat['chat_id'])}/send"
        body = {"msgtype": "m.text", "body": "Welcome"}
        await call(session, "PUT", f"{send}/m.room.message/{uuid.uuid4().hex}", body, **user)
        minted = await call(session, "POST", session_url, {"client_id": f"c{n}"}, **backend)
        senders.append((send, minted["access_token"]))

    def get(path: str, who: dict[str, str]) -> Callable[[], Awaitable[Any]]:
        return lambda: call(session, "GET", base + path, **who)

    pins = itertools.cycle(itertools.product(rooms, ("PUT", "DELETE")))
    names = itertools.cycle(
        (n, name) for name in ("Client {}", "Client No. {}") for n in range(clients)
    )

    async def pin() -> Any:
        room, method = next(pins)
        return await call(session, method, f"{base}/chats/{quote(room)}/pin", **user)

    async def upsert() -> Any:
        n, name = next(names)
        return await put(f"/practices/{PRACTICE}/clients/c{n}", client(n, name.format(n)))

    async def mint() -> Any:
        return await call(session, "POST", session_url, {"client_id": "c0"}, **backend)

    turns = itertools.cycle(senders)

    async def message() -> Any:
        send, token = next(turns)
        body = {"msgtype": "m.text", "body": "Could we move Tuesday's session to the morning?"}
        url = f"{send}/m.room.message/{uuid.uuid4().hex}"
        return await call(session, "PUT", url, body, token=token)

    async def processed() -> float:
        return await _metric(session, metrics, "practice_bridge_pipeline_events_total", "message")

    await _until(lambda: _metric(session, metrics, "practice_bridge_pipeline_lag_seconds"), 0, 1)

    return [
        Route("GET /health", get("/health", backend)),
        Route("GET /openapi.json (the document, 200 KB)", get("/openapi.json", backend)),
        Route("GET /settings", get("/settings", user)),
        Route("GET /audit", get(f"/audit?practice_id={PRACTICE}", backend)),
        Route(f"GET /chats ({chats} chats)", get("/chats", user)),
        Route(f"GET /contacts ({clients} clients)", get("/contacts", user)),
        Route("PUT|DELETE /chats/{chat_id}/pin", pin),
        Route("PUT /practices/{p}/clients/{c}", upsert),
        Route("POST /practices/{p}/sessions", mint),
        Route("a client's message (Synapse, then the bridge)", message, processed),
    ]


async def measure(
    seconds: float, postgres: str | None, size: tuple[int, int]
) -> list[dict[str, Any]]:
    """The routes on SQLite, or on a schema of its own in ``postgres``."""
    if postgres is None:
        return await _measure(seconds, size, {})
    async with postgres_schema(postgres, "bench") as schema:
        database = {
            "appservice.database": postgres,
            "appservice.database_opts": {
                "min_size": 1,
                "max_size": 10,
                "server_settings": {"search_path": schema},
            },
        }
        return await _measure(seconds, size, database)


async def _measure(
    seconds: float, size: tuple[int, int], database: dict[str, Any]
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        root = Path(tmp)
        config = product_config(
            root,
            **{
                "appservice.database": f"sqlite:{root / 'bridge.db'}",
                "provisioning.token_cache_seconds": 60,
                "metrics.enabled": True,
                "metrics.listen_port": free_port(),
                # Email on, so that messages write their outbox rows; none is due before the end.
                "notifications.smtp.hostname": "127.0.0.1",
                "notifications.smtp.port": free_port(),
                "notifications.smtp.security": "none",
                **database,
            },
        )
        async with running_product(root, config) as (hs, bridge):
            pids = (bridge.pid, hs.synapse.pids[0])
            base = f"http://127.0.0.1:{config.appservice.port}{config.provisioning.prefix}"
            async with aiohttp.ClientSession() as session:
                metrics = f"http://127.0.0.1:{config.metrics.listen_port}/metrics"
                secret = config.provisioning.shared_secret
                table = await routes(session, base, secret, size, metrics)
                figures = [(route, await drive(route, seconds, pids)) for route in table]
    floor = figures[0][1].rate
    backend = "PostgreSQL" if database else "SQLite"
    return [
        {
            "name": f"API {route.name}, {backend}",
            "figure": f.rate,
            "unit": "req/s",
            "baseline": floor,
            "ratio": f.rate / floor,
            "target": f"reported; CPU per request: bridge {f.bridge_ms:.1f} ms, "
            f"Synapse {f.synapse_ms:.1f} ms",
            "met": None,
        }
        for route, f in figures
    ]


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    seconds, size = (0.3, SMOKE_SIZE) if args.smoke else (args.seconds, SIZE)
    rows = await measure(seconds, None, size)
    postgres = getattr(args, "postgres", None) or os.environ.get(PG_ENV)
    if postgres and not args.smoke:
        rows += await measure(seconds, postgres, size)
    return rows


def main() -> None:
    script_main(__doc__, add_arguments, run, postgres_env=PG_ENV)


if __name__ == "__main__":
    main()
