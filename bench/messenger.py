"""The Messenger in headless Chromium: the Messages page opened until its chat list is on screen.

For a practitioner with 2,000 chats.
The practice is built as ``bench/scale.py`` builds it (one Synapse with our registration and
modules, the bridge as its own process on SQLite, every client, chat, message and flag through
the API or Synapse), with just enough clients for the chats. A portal page on an origin of its
own (the browser tests' stand-in portal) gets the practitioner's session before it loads and
mounts the Messenger with it, as a portal does. The figure is the time from the page's
navigation start to the Messenger's first screenful of the list drawn (it reports "list-shown"
on the animation frame after it put the rows in; the portal page notes ``performance.now()``
then): the portal page, the embed script, the frame and its modules, the session handed over,
the first page of ``GET /chats``, and drawing. Each opening ends once the Messenger has told
the portal its unread count (the work it does after the list), so none of it spills into the
baseline. One browser context for every opening, so the files come from its cache after the
first, as for a person who opens Messages every day; the first opening is left out.

Baseline: the same person's ``GET /chats`` alone, the whole list (every page through
``next_batch``, each body read to its last byte, from Python), interleaved with the openings.
Targets: at most 1 s, and at most 3x the baseline (medians). Also reported: the first page
alone (what the page waits for) and the page against it.

    python bench/messenger.py [--messenger-chats N] [--messenger-opens N] [--smoke]

Needs Debian's ``chromium`` and Playwright (``make install``); without them it says so in its
row and measures nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench._product import product_config, start_bridge, start_homeserver, stop_process  # noqa: E402
from bench.scale import CONCURRENCY, Practice, Run, build, marked  # noqa: E402
from bench.table import p99, script_main, size  # noqa: E402
from bridge.db import create_database  # noqa: E402
from registration.homeserver import free_port  # noqa: E402
from tests.browser import browser_missing, chromium, portal_server  # noqa: E402

NAME = "messenger: Messages page opened -> chat list on screen"
TARGET_MS = 1000.0
TARGET_RATIO = 3.0
VIEWPORT = {"width": 1280, "height": 800}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messenger-chats", type=int, default=2_000, help="chats of the practitioner"
    )
    parser.add_argument(
        "--messenger-opens", type=int, default=15, help="timed openings of the page"
    )


async def open_page(context: Any, portal: str, session: dict[str, Any]) -> float:
    """One opening of the Messages page; milliseconds from navigation start to the list."""
    page = await context.new_page()
    try:
        await page.add_init_script(f"window.benchSession = {json.dumps(session)};")
        await page.goto(portal + "/")
        await page.wait_for_function("() => window.listShownAt !== undefined", timeout=120_000)
        shown = float(await page.evaluate("() => window.listShownAt"))
        await page.wait_for_function("() => window.unreadSeen.length > 0", timeout=120_000)
        return shown
    finally:
        await page.close()


async def rows_drawn(context: Any, portal: str, session: dict[str, Any], expected: int) -> None:
    """Every chat of the list ends up on the page as the person scrolls down to its end (the
    rows after the first screenful, and the pages after the first when the list is paged)."""
    page = await context.new_page()
    try:
        await page.add_init_script(f"window.benchSession = {json.dumps(session)};")
        await page.goto(portal + "/")
        rows = page.frame_locator("iframe").locator(".chat-row")
        deadline = time.monotonic() + 60
        while (count := await rows.count()) != expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Messenger drew {count} of {expected} chats")
            if count:
                await rows.nth(count - 1).scroll_into_view_if_needed()
            await page.wait_for_timeout(100)
    finally:
        await page.close()


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    smoke = getattr(args, "smoke", False)
    chats = size(args, "messenger_chats", 2_000, 10)
    opens = size(args, "messenger_opens", 15, 3)
    missing = browser_missing()
    if missing:
        return [{"name": NAME, "target": f"not measured: {missing} cannot run", "met": None}]
    logging.getLogger("practice").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-messenger-") as tmp_name:
        root = Path(tmp_name)
        portal_port = free_port()
        config = product_config(
            root, **{"provisioning.cors_origins": [f"http://127.0.0.1:{portal_port}"]}
        )
        config["appservice.database"] = f"sqlite:{root / 'bridge.db'}"
        config.save()
        hs = start_homeserver(root, config, product=True)
        try:
            bridge = await start_bridge(config, root / "bridge.log")
            db = create_database(str(config["appservice.database"]))
            await db.start()
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2))
            try:
                measure = Run(config, hs, db, http)
                # Nine in ten clients are activated; one chat per activated client.
                practice = Practice(f"msg{uuid.uuid4().hex[:6]}", math.ceil(chats / 0.9), chats)
                print(f"messenger: a practitioner with {chats:,} chats ...", file=sys.stderr)
                await build(measure, practice, verbose=not smoke)
                session = {
                    "user_id": practice.staff_user,
                    "access_token": practice.staff_token,
                    "device_id": "",
                    "homeserver": hs.url,
                }
                listed = chats - len(marked(practice.rooms)["hide"])
                bridge_url = f"http://127.0.0.1:{config['appservice.port']}"
                async with portal_server(portal_port, bridge_url) as portal, chromium() as b:
                    context = await b.new_context(viewport=VIEWPORT)
                    await open_page(context, portal, session)  # the files into the cache
                    await measure.timed_list(practice.staff_token)
                    pages, alone, first = [], [], []
                    print(f"messenger: {opens} timed openings ...", file=sys.stderr)
                    for _ in range(opens):
                        pages.append(await open_page(context, portal, session))
                        screen, whole, _ = await measure.timed_list(practice.staff_token)
                        alone.append(whole * 1000)
                        first.append(screen * 1000)
                    await rows_drawn(context, portal, session, listed)
                    await context.close()
            finally:
                await http.close()
                await db.stop()
                stop_process(bridge)
        finally:
            hs.stop()
    return rows(chats, pages, alone, first)


def rows(
    chats: int, pages: list[float], alone: list[float], first: list[float]
) -> list[dict[str, Any]]:
    median, base = statistics.median(pages), statistics.median(alone)
    ratio = median / base
    met = median <= TARGET_MS and ratio <= TARGET_RATIO
    return [
        {
            "name": f"{NAME}, {chats:,} chats, median",
            "figure": median,
            "unit": "ms",
            "baseline": base,
            "ratio": ratio,
            "target": f"<= {TARGET_MS:g} ms and <= {TARGET_RATIO:g}x the same person's "
            "GET /chats alone (the whole list)",
            "met": met,
        },
        {
            "name": f"{NAME}, against the first page of GET /chats alone",
            "figure": median,
            "unit": "ms",
            "baseline": statistics.median(first),
            "ratio": median / statistics.median(first),
            "target": "reported (the page waits for the first page only)",
        },
        {
            "name": f"{NAME}, p99",
            "figure": p99(pages) if len(pages) > 1 else pages[0],
            "unit": "ms",
            "baseline": p99(alone) if len(alone) > 1 else alone[0],
            "ratio": None,
            "target": f"reported ({len(pages)} openings; the median is the target)",
        },
    ]


def main() -> None:
    script_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
