"""Serving the Messenger's static files with a strict Content-Security-Policy.

Only the files shipped in ``static/`` are served, from memory (they are read once at start-up,
so no path from a request ever reaches the file system). Every answer forbids inline scripts
and styles, plugins, and connections other than the bridge and the homeserver;
``frame-ancestors`` lets only the bridge itself and the portal origins of
``provisioning.cors_origins`` embed the Messenger.

The frame's page (``app.html``) and ``embed.js`` are revalidated on every load (an upgrade shows
at once); the page asks for its stylesheet and modules under the files' version (``?v=``, a hash
of every file, written into the page and the modules' imports), and those answers may be kept
for good, so a portal page opens the Messenger without asking again for each of its modules.
"""

from __future__ import annotations

import hashlib
import html
import re
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


# What the page and the modules load from the frame: the stylesheet and ``js/*.js``.
_PAGE_ASSET = re.compile(rb'((?:href|src)="(?:app\.css|js/[\w-]+\.js))"')
_MODULE_IMPORT = re.compile(rb'(from "\./[\w-]+\.js)"')


def static_files(provisioning_prefix: str) -> tuple[dict[str, tuple[bytes, str, str]], str]:
    """Every servable file by its path under ``/messenger/``: its bytes (read once: they are
    small), its type and its ETag; and the files' version. ``app.html`` learns the provisioning
    API's prefix, and it and the modules ask for the frame's files under the version."""
    sources = {
        path.relative_to(STATIC_DIR).as_posix(): path.read_bytes()
        for path in sorted(STATIC_DIR.rglob("*"))
        if path.is_file() and path.suffix in _TYPES
    }
    version = hashlib.sha256(b"".join(sources.values())).hexdigest()[:16]
    versioned = rb"\1?v=" + version.encode() + rb'"'
    files = {}
    for name, data in sources.items():
        if name == APP_PAGE:
            data = data.replace(
                b"{{provisioning_prefix}}", html.escape(provisioning_prefix).encode()
            )
            data = _PAGE_ASSET.sub(versioned, data)
        elif name.startswith("js/"):
            data = _MODULE_IMPORT.sub(versioned, data)
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        files[name] = (data, _TYPES[name[name.rfind(".") :]], etag)
    return files, version


def install_messenger(
    app: web.Application,
    homeserver_url: str,
    portal_origins: Iterable[str],
    provisioning_prefix: str,
) -> None:
    """Serve the Messenger under ``/messenger/`` of ``app`` (``/messenger/`` is its page)."""
    files, version = static_files(provisioning_prefix)
    headers = {
        "Content-Security-Policy": content_security_policy(homeserver_url, portal_origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # Revalidated on every load (a 304 from memory), so an upgrade shows at once.
        "Cache-Control": "no-cache",
    }
    # A file asked for under this version never changes: a new version is a new URL.
    kept = {**headers, "Cache-Control": "public, max-age=31536000, immutable"}

    async def serve(request: web.Request) -> web.StreamResponse:
        found = files.get(request.match_info["name"] or APP_PAGE)
        if found is None:
            raise web.HTTPNotFound(text="Not found", headers=headers)
        data, content_type, etag = found
        if request.query.get("v") == version:
            return web.Response(
                body=data, headers={**kept, "ETag": etag, "Content-Type": content_type}
            )
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={**headers, "ETag": etag})
        return web.Response(
            body=data, headers={**headers, "ETag": etag, "Content-Type": content_type}
        )

    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(f"{MESSENGER_PATH}/")

    app.router.add_get(MESSENGER_PATH, redirect)
    app.router.add_get(MESSENGER_PATH + "/{name:.*}", serve)
