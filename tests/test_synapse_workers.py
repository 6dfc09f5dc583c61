"""Synapse with workers (registration.workers): the rules hold in the process that does the work.

The modules marked ``synapse_workers`` run whole against this deployment as well (see
tests/conftest.py); here the worker layout itself is pinned: the router follows Synapse's
endpoint patterns, both modules load in every process, a client's refused message and room are
refused by the generic worker itself, uploads are checked on the media worker, and transactions
reach the bridge from the appservice worker, not from the main process.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from bridge.app import Bridge
from registration import router
from registration.workers import APPSERVICE_WORKER, CLIENT_WORKER, MEDIA_WORKER, WORKERS
from tests.clients import LIMIT, ApiClient, HomeserverInfo, MatrixClient, chat_with_limit
from tests.conftest import OWN_ATTACHMENT_RULES
from tests.conftest import WORKERS as WORKERS_LEG
from tests.media import upload

# Against the deployment with workers only (and so with the bridge on PostgreSQL).
on_workers = pytest.mark.parametrize("homeserver", [WORKERS_LEG], indirect=True)

TOO_LONG = "ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG"
TOO_LARGE = "ORG.PRACTICEBRIDGE.ATTACHMENT_TOO_LARGE"
V3 = "/_matrix/client/v3"


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/_matrix/client/v3/sync", router.CLIENT),
        ("/_matrix/client/v3/createRoom", router.CLIENT),
        ("/_matrix/client/v3/rooms/!r%3Ax.test/send/m.room.message/t1", router.CLIENT),
        ("/_matrix/client/v3/rooms/!r%3Ax.test/state/m.room.name/", router.CLIENT),
        ("/_matrix/client/v3/rooms/!r%3Ax.test/invite", router.CLIENT),
        ("/_matrix/client/v3/rooms/!r%3Ax.test/messages", router.CLIENT),
        ("/_matrix/client/v3/login", router.CLIENT),
        ("/_matrix/client/v3/register", router.CLIENT),
        ("/_matrix/client/v3/profile/%40u%3Ax.test/displayname", router.CLIENT),
        ("/_synapse/admin/v1/rooms/!r%3Ax.test", router.CLIENT),
        ("/_matrix/client/v3/user/%40u%3Ax.test/account_data/m.direct", router.MAIN),
        ("/_matrix/client/v3/user/%40u%3Ax.test/rooms/!r/tags/m.favourite", router.MAIN),
        ("/_matrix/client/v3/rooms/!r%3Ax.test/receipt/m.read/%24e", router.MAIN),
        ("/_matrix/client/v3/rooms/!r%3Ax.test/typing/%40u%3Ax.test", router.MAIN),
        ("/_matrix/client/v3/keys/upload", router.MAIN),
        ("/_matrix/media/v3/upload", router.MEDIA),
        ("/_matrix/client/v1/media/download/x.test/abc", router.MEDIA),
        ("/_matrix/client/v1/media/config", router.MEDIA),
        ("/_matrix/client/v1/appservice/practice-bridge/ping", router.APPSERVICE),
        ("/_synapse/admin/v2/rooms/!r%3Ax.test", router.MAIN),
        ("/_synapse/admin/v2/users/%40u%3Ax.test/delete_devices", router.MAIN),
        ("/_synapse/client/org.practicebridge/module", router.MAIN),
    ],
)
def test_requests_go_where_synapse_worker_documentation_sends_them(path: str, role: str) -> None:
    assert router.role_for(path) == role


@on_workers
def test_both_modules_load_in_every_process(homeserver: HomeserverInfo) -> None:
    assert homeserver.workers is not None
    logs = [homeserver.workers.main.log_path]
    logs += [process.log_path for process in homeserver.workers.workers.values()]
    assert len(logs) == 1 + len(WORKERS)
    for log in logs:
        text = log.read_text(errors="replace")
        assert "practice-bridge module loaded" in text, log
        assert "practice-bridge media module loaded" in text, log


def _requests_in(log: Path, marker: str) -> list[str]:
    """The access lines of a process's log that name ``marker`` (a transaction id)."""
    return [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "Processed request" in line and marker in line
    ]


async def _put(
    session: aiohttp.ClientSession, url: str, token: str, body: object
) -> tuple[int, Any]:
    async with session.put(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json(content_type=None)


@on_workers
async def test_the_generic_worker_refuses_an_over_limit_message_itself(
    api: ApiClient, practice_id: str, homeserver: HomeserverInfo
) -> None:
    assert homeserver.workers is not None
    worker = homeserver.workers.workers[CLIENT_WORKER.name]
    main_log = homeserver.workers.main.log_path
    _, client, room = await chat_with_limit(api, practice_id)
    too_long = {"msgtype": "m.text", "body": "x" * (LIMIT + 1)}
    send = f"{V3}/rooms/{quote(room)}/send/m.room.message"

    # Through the client-facing URL: the router hands it to the generic worker, which refuses.
    routed = f"routed{uuid.uuid4().hex}"
    status, body = await _put(
        api.session, f"{homeserver.url}{send}/{routed}", client.token, too_long
    )
    assert (status, body["errcode"]) == (400, TOO_LONG), body
    assert body["max_length"] == LIMIT
    (line,) = _requests_in(worker.log_path, routed)
    assert " 400 " in line
    assert _requests_in(main_log, routed) == []

    # Straight to the generic worker's own port: its module answers, nobody else is asked.
    direct = f"direct{uuid.uuid4().hex}"
    worker_url = homeserver.workers.worker_urls[CLIENT_WORKER.name]
    status, body = await _put(api.session, f"{worker_url}{send}/{direct}", client.token, too_long)
    assert (status, body["errcode"]) == (400, TOO_LONG), body
    assert _requests_in(main_log, direct) == []

    # A message within the limit goes through the same worker and is stored.
    fine = f"fine{uuid.uuid4().hex}"
    body_ok = {"msgtype": "m.text", "body": "x" * LIMIT}
    status, body = await _put(api.session, f"{worker_url}{send}/{fine}", client.token, body_ok)
    assert status == 200 and body["event_id"].startswith("$"), body


@on_workers
async def test_the_generic_worker_refuses_a_client_room_itself(
    api: ApiClient, practice_id: str, homeserver: HomeserverInfo
) -> None:
    assert homeserver.workers is not None
    await api.setup_practice(practice_id, clients=("c1",))
    client = await api.session_for(practice_id, client_id="c1")
    direct = MatrixClient(
        homeserver.workers.worker_urls[CLIENT_WORKER.name],
        client.token,
        client.user_id,
        api.session,
    )
    r = await direct.request("POST", f"{V3}/createRoom", {"preset": "private_chat"})
    assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r.body
    assert r.body["error"] == "Clients cannot create chats; the practice starts them."


@on_workers
async def test_uploads_are_checked_on_the_media_worker(
    api: ApiClient, homeserver: HomeserverInfo
) -> None:
    assert homeserver.workers is not None
    await api.setup_practice(OWN_ATTACHMENT_RULES)
    small = await api.session_for(OWN_ATTACHMENT_RULES, client_id="c1")
    r = await upload(small, b"x" * 4097, "text/plain", "notes.txt")
    assert (r.status, r.errcode) == (413, TOO_LARGE), r.body
    media_log = homeserver.workers.workers[MEDIA_WORKER.name].log_path.read_text()
    assert f"Refused an upload by {small.user_id}: {TOO_LARGE}" in media_log
    assert "/_matrix/media/v3/upload" not in homeserver.workers.main.log_path.read_text()


@on_workers
async def test_transactions_reach_the_bridge_from_the_appservice_worker(
    api: ApiClient, practice_id: str, homeserver: HomeserverInfo
) -> None:
    assert homeserver.workers is not None
    await chat_with_limit(api, practice_id, limit=None)
    notifier = homeserver.workers.workers[APPSERVICE_WORKER.name].log_path.read_text()
    assert "/_matrix/app/v1/transactions/" in notifier
    assert "/_matrix/app/v1/transactions/" not in homeserver.workers.main.log_path.read_text()


@on_workers
async def test_staff_sign_in_and_the_client_refusal_happen_on_the_generic_worker(
    api: ApiClient, bridge: Bridge, practice_id: str, homeserver: HomeserverInfo
) -> None:
    """Logins go to the generic worker: an issued password signs in there, and its logins
    module refuses a client account with a password an admin set."""
    assert homeserver.workers is not None
    worker_url = homeserver.workers.worker_urls[CLIENT_WORKER.name]
    await api.setup_practice(practice_id)
    r = await api.call("POST", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert r.status == 201, r.body
    client_user = bridge.mapper.user_id("client", practice_id, "c1")
    await api.session_for(practice_id, client_id="c1")
    await bridge.homeserver.set_password(client_user, "set behind the bridge's back")

    async def login(user: str, password: str) -> tuple[int, Any]:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        }
        async with api.session.post(f"{worker_url}{V3}/login", json=body) as resp:
            return resp.status, await resp.json(content_type=None)

    status, body = await login(r.body["username"], r.body["password"])
    assert status == 200 and body["user_id"] == r.body["user_id"], body
    status, body = await login(client_user, "set behind the bridge's back")
    assert (status, body["errcode"]) == (403, "ORG.PRACTICEBRIDGE.APP_LOGIN_STAFF_ONLY"), body
