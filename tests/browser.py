"""Real headless Chromium (Debian's ``chromium``) driven by Playwright, and a stand-in portal.

The portal is a page on an origin of its own (another port of 127.0.0.1) that loads the
Messenger's embed script from the bridge and mounts it with a session, exactly as a practice
platform would. The session reaches the page through Playwright's ``evaluate``: never a URL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

CHROMIUM = os.environ.get("PRACTICE_BRIDGE_CHROMIUM", "/usr/bin/chromium")
# The machine's network is closed: nothing in the background, nothing over QUIC.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
SCREENSHOTS_ENV = "PRACTICE_BRIDGE_SCREENSHOTS"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"chromium is not installed ({CHROMIUM}; apt-get install chromium): browser tests"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make install): browser tests"
    return None


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


PORTAL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sunrise Wellness</title>
<script src="{bridge}/messenger/embed.js"></script>
<style>
  * {{ box-sizing: border-box; }}
  html, body {{ margin: 0; height: 100%; }}
  body {{ font: 15px/1.4 system-ui, sans-serif; background: #f1f5f9; color: #1e293b;
          display: flex; flex-direction: column; }}
  header {{ display: flex; align-items: center; gap: 24px; height: 56px; padding: 0 24px;
            background: #134e4a; color: #fff; flex: none; }}
  header b {{ font-size: 16px; }}
  header nav {{ display: flex; gap: 18px; opacity: .85; flex: 1; }}
  header .me {{ font-size: 14px; }}
  main {{ flex: 1; min-height: 0; padding: 16px 24px 24px; }}
  main.tab {{ padding: 32px; }}
  .card {{ background: #fff; border-radius: 12px; padding: 20px 24px; max-width: 560px;
           margin-bottom: 16px; border: 1px solid #e2e8f0; }}
  .card h2 {{ margin: 0 0 6px; font-size: 17px; }} .card p {{ margin: 0; color: #64748b; }}
  @media (max-width: 600px) {{ header nav {{ display: none; }} main {{ padding: 0; }}
                               main.tab {{ padding: 16px; }} }}
</style></head>
<body>
<header><b>Sunrise Wellness</b><nav><span>Home</span><span>Appointments</span>
<span>Programs</span><span>Messages</span></nav><span class="me" id="me"></span></header>
<main id="main"></main>
<script>
  window.mountMessenger = function (session, layout, name) {{
    const main = document.getElementById("main");
    document.getElementById("me").textContent = name || "";
    main.className = layout;
    if (layout === "tab") {{
      main.innerHTML = '<div class="card"><h2>Your next appointment</h2>' +
        '<p>Tuesday 10:00 with the practice.</p></div><div class="card"><h2>Programs</h2>' +
        '<p>Nutrition basics, week 2 of 6.</p></div>';
    }}
    window.unreadSeen = [];
    window.signedOut = false;
    window.messenger = PracticeMessenger.mount(main, {{
      session, layout,
      onUnread: (n) => window.unreadSeen.push(n),
      onSignedOut: () => {{ window.signedOut = true; }},
      onEvent: (e) => {{ if (e.what === "list-shown") window.listShownAt = performance.now(); }},
    }});
  }};
  // bench/messenger.py hands the session over before the page loads (an init script).
  if (window.benchSession) mountMessenger(window.benchSession, "page");
</script>
</body></html>
"""


@asynccontextmanager
async def portal_server(port: int, bridge_url: str) -> AsyncIterator[str]:
    """The stand-in portal on 127.0.0.1:``port``; yields its origin."""
    page = PORTAL_PAGE.format(bridge=bridge_url)

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def screenshot_path(name: str, fallback: Path) -> Path:
    """Where a screenshot goes: ``$PRACTICE_BRIDGE_SCREENSHOTS`` (docs/ when refreshing them),
    otherwise the test's own folder."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"messenger-{name}.png"
