"""An appservice that does nothing: the floor under the end-to-end figure.

Synapse does the same work for any appservice interested in an event, whatever the appservice
then does with it: it reads the new events, records a transaction, pushes it over HTTP, marks it
done and moves its position on, in the process that serves the room's clients. The end-to-end
bench runs a third Synapse with this appservice registered (interested in the same users as the
bridge is in the product's chat, answering every transaction at once with ``{}``), so each run
shows how much of the product's figure is Synapse's appservice machinery and how much is left
for the product's own module and bridge. Its users' namespace is exclusive, as the bridge's is:
Synapse treats such users differently (it evaluates no push rules for them), so the two sides
differ only by the module and the bridge.

    python bench/null_appservice.py PORT
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from registration.processes import ChildProcess, ProcessGroup  # noqa: E402

PING = "/_matrix/app/v1/ping"


async def _transaction(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({})


async def _ping(request: web.Request) -> web.Response:
    """Synapse's ping (POST) and the bench's wait for it to start (GET)."""
    return web.json_response({})


async def _unknown(request: web.Request) -> web.Response:
    """User and alias queries, and anything else: it knows no one."""
    return web.json_response({"errcode": "M_NOT_FOUND", "error": "Not here"}, status=404)


def application() -> web.Application:
    app = web.Application()
    app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", _transaction)
    app.router.add_route("*", PING, _ping)
    app.router.add_route("*", "/{tail:.*}", _unknown)
    return app


def write_registration(path: Path, port: int, user_regex: str) -> str:
    """A registration for it on ``port``, owning the users of ``user_regex``; returns its
    ``as_token`` (the users are registered and logged in with it)."""
    as_token = secrets.token_urlsafe(24)
    registration = {
        "id": "null-appservice",
        "url": f"http://127.0.0.1:{port}",
        "as_token": as_token,
        "hs_token": secrets.token_urlsafe(24),
        "sender_localpart": "null-appservice",
        "rate_limited": False,
        "receive_ephemeral": True,
        "namespaces": {
            "users": [{"regex": user_regex, "exclusive": True}],
            "aliases": [],
            "rooms": [],
        },
    }
    path.write_text(json.dumps(registration, indent=2))  # YAML is a superset of JSON
    return as_token


def process(port: int, log_path: Path) -> ProcessGroup:
    """It, in a process of its own (it takes the bridge's CPU when CPUs are split), to start
    (``start`` returns once it answers) and stop."""
    argv = [sys.executable, str(Path(__file__).resolve()), str(port)]
    url = f"http://127.0.0.1:{port}{PING}"
    return ProcessGroup([[ChildProcess("the appservice that does nothing", argv, log_path, url)]])


if __name__ == "__main__":
    web.run_app(
        application(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None
    )
