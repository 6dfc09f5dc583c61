"""Serving the Messenger's static files with a strict Content-Security-Policy.

Only the files shipped in ``static/`` are served, from memory (they are read once at start-up,
so no path from a request ever reaches the file system). Every answer forbids inline scripts
and styles, plugins, and connections other than the bridge and the homeserver;
``frame-ancestors`` lets only the bridge itself and the portal origins of
``provisioning.cors_origins`` embed the Messenger.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web
from yarl import URL

MESSENGER_PATH = "/messenger"
STATIC_DIR = Path(__file__).with_name("static")
APP_PAGE = "app.html"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def content_security_policy(homeserver_url: str, portal_origins: Iterable[str]) -> str:
    homeserver = str(URL(homeserver_url).origin())
    ancestors = " ".join(["'self'", *portal_origins])
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob:",
            "media-src 'self' blob:",
            f"connect-src 'self' {homeserver}",
            "frame-src 'self'",
            f"frame-ancestors {ancestors}",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def static_files(provisioning_prefix: str) -> dict[str, tuple[bytes, str, str]]:
    """Every servable file by its path under ``/messenger/``: its bytes (read once: they are
    small), its type and its ETag. ``app.html`` learns the provisioning API's prefix."""
    files = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file() or path.suffix not in _TYPES:
            continue
        name = path.relative_to(STATIC_DIR).as_posix()
        data = path.read_bytes()
        if name == APP_PAGE:
            data = data.replace(
                b"{{provisioning_prefix}}", html.escape(provisioning_prefix).encode()
            )
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        files[name] = (data, _TYPES[path.suffix], etag)
    return files


def install_messenger(
    app: web.Application,
    homeserver_url: str,
    portal_origins: Iterable[str],
    provisioning_prefix: str,
) -> None:
    """Serve the Messenger under ``/messenger/`` of ``app`` (``/messenger/`` is its page)."""
    files = static_files(provisioning_prefix)
    headers = {
        "Content-Security-Policy": content_security_policy(homeserver_url, portal_origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # Revalidated on every load (a 304 from memory), so an upgrade shows at once.
        "Cache-Control": "no-cache",
    }

    async def serve(request: web.Request) -> web.StreamResponse:
        found = files.get(request.match_info["name"] or APP_PAGE)
        if found is None:
            raise web.HTTPNotFound(text="Not found", headers=headers)
        data, content_type, etag = found
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={**headers, "ETag": etag})
        return web.Response(
            body=data, headers={**headers, "ETag": etag, "Content-Type": content_type}
        )

    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(f"{MESSENGER_PATH}/")

    app.router.add_get(MESSENGER_PATH, redirect)
    app.router.add_get(MESSENGER_PATH + "/{name:.*}", serve)
