"""The front door of a Synapse with workers: one client-facing URL, each request sent on to the
process that serves it, by the endpoint patterns of Synapse's worker documentation.

For the local and test deployment (``registration.workers``); in production nginx or haproxy
carry the same rules (``docs/admin.md``). Bodies stream both ways (media uploads and downloads,
long-polling ``/sync``); the caller's address goes on in ``X-Forwarded-For``, which the listeners
behind trust (``x_forwarded``). One process per role, so a room's pagination always reaches the
same process, as Synapse asks.

    python -m registration.router router.yaml   # port: 8008, upstreams: {main: URL, ...}
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from ruamel.yaml import YAML

log = logging.getLogger("practice.router")

MAIN = "main"
CLIENT = "client"
MEDIA = "media"
APPSERVICE = "appservice"
ROLES = (MAIN, CLIENT, MEDIA, APPSERVICE)

_API = r"(?:api/v1|r0|v3|unstable)"
_R0 = r"(?:r0|v3|unstable)"


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    role: str


def _routes(role: str, patterns: Iterable[str]) -> list[Route]:
    return [Route(re.compile(p), role) for p in patterns]


# First match wins; whatever matches nothing goes to the main process.
ROUTES: list[Route] = [
    # The media repository worker: media and the media admin API.
    *_routes(
        MEDIA,
        [
            r"^/_matrix/media/",
            r"^/_matrix/client/v1/media/",
            r"^/_matrix/federation/v1/media/",
            r"^/_synapse/admin/v1/purge_media_cache$",
            r"^/_synapse/admin/v1/room/.*/media.*$",
            r"^/_synapse/admin/v1/user/.*/media.*$",
            r"^/_synapse/admin/v1/media/.*$",
            r"^/_synapse/admin/v1/quarantine_media/.*$",
            r"^/_synapse/admin/v1/users/.*/media$",
        ],
    ),
    # Streams the main process writes: their endpoints go to the writer, not to a generic
    # worker. Synapse lets a generic worker answer the reads of account data, tags, push rules
    # and presence too; here they go to the writer, so that a client reads back at once what it
    # has just written.
    *_routes(
        MAIN,
        [
            rf"^/_matrix/client/{_API}/rooms/.*/typing",
            rf"^/_matrix/client/{_R0}/sendToDevice/",
            rf"^/_matrix/client/{_R0}/rooms/.*/receipt",
            rf"^/_matrix/client/{_R0}/rooms/.*/read_markers",
            rf"^/_matrix/client/{_R0}/delete_devices$",
            rf"^/_matrix/client/{_API}/devices(/|$)",
            rf"^/_matrix/client/{_R0}/keys/upload",
            rf"^/_matrix/client/{_API}/keys/device_signing/upload$",
            rf"^/_matrix/client/{_API}/keys/signatures/upload$",
            rf"^/_matrix/client/{_R0}/.*/tags",
            rf"^/_matrix/client/{_R0}/.*/account_data",
            rf"^/_matrix/client/{_API}/pushrules/",
            rf"^/_matrix/client/{_API}/presence/",
        ],
    ),
    # The appservice ping goes to the process that sends to the appservice: a good answer
    # there ends its back-off at once (elsewhere it only checks the connection).
    *_routes(APPSERVICE, [r"^/_matrix/client/v1/appservice/[^/]+/ping$"]),
    # The generic worker: sync, client reads, registration and login, sending events.
    *_routes(
        CLIENT,
        [
            r"^/_matrix/client/(r0|v3)/sync$",
            r"^/_matrix/client/(api/v1|r0|v3)/events$",
            r"^/_matrix/client/(api/v1|r0|v3)/initialSync$",
            r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
            rf"^/_matrix/client/{_API}/createRoom$",
            rf"^/_matrix/client/{_API}/publicRooms$",
            rf"^/_matrix/client/{_API}/rooms/.*/joined_members$",
            rf"^/_matrix/client/{_API}/rooms/.*/context/.*$",
            rf"^/_matrix/client/{_API}/rooms/.*/members$",
            rf"^/_matrix/client/{_API}/rooms/.*/state$",
            r"^/_matrix/client/v1/rooms/.*/hierarchy$",
            r"^/_matrix/client/(v1|unstable)/rooms/.*/relations/",
            r"^/_matrix/client/v1/rooms/.*/threads$",
            r"^/_matrix/client/unstable/im.nheko.summary/summary/.*$",
            r"^/_matrix/client/v1/room_summary/.*$",
            rf"^/_matrix/client/{_R0}/account/3pid$",
            rf"^/_matrix/client/{_R0}/account/whoami$",
            rf"^/_matrix/client/{_R0}/account/deactivate$",
            r"^/_matrix/client/versions$",
            rf"^/_matrix/client/{_API}/voip/turnServer$",
            rf"^/_matrix/client/{_API}/rooms/.*/event/",
            rf"^/_matrix/client/{_API}/joined_rooms$",
            r"^/_matrix/client/v1/rooms/.*/timestamp_to_event$",
            r"^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases",
            rf"^/_matrix/client/{_API}/search$",
            rf"^/_matrix/client/{_R0}/user/.*/filter(/|$)",
            rf"^/_matrix/client/{_API}/directory/room/.*$",
            rf"^/_matrix/client/{_R0}/capabilities$",
            rf"^/_matrix/client/{_R0}/notifications$",
            r"^/_synapse/admin/v1/rooms/[^/]+$",
            rf"^/_matrix/client/{_R0}/keys/query$",
            rf"^/_matrix/client/{_R0}/keys/changes$",
            rf"^/_matrix/client/{_R0}/keys/claim$",
            rf"^/_matrix/client/{_R0}/room_keys/",
            rf"^/_matrix/client/{_API}/login$",
            rf"^/_matrix/client/{_R0}/register$",
            rf"^/_matrix/client/{_R0}/register/available$",
            r"^/_matrix/client/v1/register/m.login.registration_token/validity$",
            rf"^/_matrix/client/{_R0}/password_policy$",
            rf"^/_matrix/client/{_API}/rooms/.*/redact",
            rf"^/_matrix/client/{_API}/rooms/.*/send",
            rf"^/_matrix/client/{_API}/rooms/.*/state/",
            rf"^/_matrix/client/{_API}/rooms/.*/(join|invite|leave|ban|unban|kick)$",
            rf"^/_matrix/client/{_API}/join/",
            rf"^/_matrix/client/{_API}/knock/",
            rf"^/_matrix/client/{_API}/profile/",
            rf"^/_matrix/client/{_R0}/user_directory/search$",
            rf"^/_matrix/client/{_API}/rooms/.*/messages$",
        ],
    ),
]


def role_for(path: str) -> str:
    """Which process serves ``path`` (as sent, still percent-encoded)."""
    for route in ROUTES:
        if route.pattern.search(path):
            return route.role
    return MAIN


# Hop-by-hop headers (RFC 9110 section 7.6.1) stay with each connection; Host names the router.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


class Router:
    def __init__(self, upstreams: dict[str, str]) -> None:
        missing = [role for role in ROLES if role not in upstreams]
        if missing:
            raise ValueError(f"no upstream for {', '.join(missing)}")
        self.upstreams = {role: url.rstrip("/") for role, url in upstreams.items()}
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        path = request.rel_url.raw_path
        role = role_for(path)
        url = self.upstreams[role] + request.rel_url.raw_path_qs
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
        forwarded_for = request.headers.get("X-Forwarded-For")
        remote = request.remote or "127.0.0.1"
        headers.append(
            ("X-Forwarded-For", f"{forwarded_for}, {remote}" if forwarded_for else remote)
        )
        headers.append(("X-Forwarded-Proto", request.scheme))
        body = request.content if request.body_exists else None
        response: web.StreamResponse | None = None
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in _NOT_FORWARDED:
                        response.headers.add(key, value)
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("%s %s -> %s: %s", request.method, path, role, e)
            if response is not None and response.prepared:
                return response  # the answer had begun: the connection ends short
            return web.json_response(
                {"errcode": "M_UNKNOWN", "error": f"The {role} process did not answer."},
                status=502,
            )
        log.info("%s %s -> %s %d", request.method, path, role, response.status)
        return response


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="YAML: port (on 127.0.0.1) and upstreams (role: URL)")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = YAML(typ="safe").load(f)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = Router(dict(config["upstreams"])).app()
    web.run_app(app, host="127.0.0.1", port=int(config["port"]), print=None, access_log=None)


if __name__ == "__main__":
    main()
