"""Staff in standard Matrix apps: the portal backend issues a password, and a Matrix client
library signs in with the normal password login, as Element does (mautrix's ClientAPI, never a
minted token). Ending the sign-in, replacing the password and removing the person are seen from
that app, on the real Synapse."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mautrix.client import ClientAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import (
    EventType,
    LoginType,
    MessageType,
    PaginationDirection,
    RoomID,
    TextMessageEventContent,
)

from bridge.app import Bridge
from tests.clients import ApiClient, HomeserverInfo, eventually


class Apps:
    """Matrix apps signed in during a test; every one is closed at the end."""

    def __init__(self, homeserver: HomeserverInfo) -> None:
        self.url = homeserver.url
        self.open: list[ClientAPI] = []

    async def sign_in(self, username: str, password: str) -> ClientAPI:
        """POST /login with m.login.password and the username, as an app's sign-in form."""
        app = ClientAPI(base_url=self.url)
        self.open.append(app)
        await app.login(
            identifier=username,
            login_type=LoginType.PASSWORD,
            password=password,
            device_name="Element",
        )
        return app

    async def refused(self, username: str, password: str) -> MatrixRequestError:
        with pytest.raises(MatrixRequestError) as refused:
            await self.sign_in(username, password)
        return refused.value

    async def close(self) -> None:
        for app in self.open:
            await app.api.session.close()


@pytest.fixture
async def apps(homeserver: HomeserverInfo) -> AsyncIterator[Apps]:
    held = Apps(homeserver)
    try:
        yield held
    finally:
        await held.close()


async def _issue(api: ApiClient, practice_id: str, staff_id: str, **params: str) -> Any:
    r = await api.call(
        "POST", f"/practices/{practice_id}/staff/{staff_id}/matrix-login", params=params or None
    )
    assert r.status == 201, r.body
    return r.body


async def _signed_out(app: ClientAPI) -> None:
    with pytest.raises(MatrixRequestError) as refused:
        await app.whoami()
    assert (refused.value.http_status, refused.value.errcode) == (401, "M_UNKNOWN_TOKEN")


async def test_practitioner_signs_in_with_the_issued_password_and_answers_a_client(
    api: ApiClient, apps: Apps, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    grant = await _issue(api, practice_id, "s1")
    assert grant["user_id"] == f"@pb_staff_{practice_id}_s1:practice.test"
    assert grant["username"] == f"pb_staff_{practice_id}_s1"
    assert grant["homeserver"] == api.homeserver.url
    assert len(grant["password"]) >= 40

    app = await apps.sign_in(grant["username"], grant["password"])
    assert (await app.whoami()).user_id == grant["user_id"]

    client = await api.session_for(practice_id, client_id="c1")
    portal = await api.session_for(practice_id, staff_id="s1")
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=portal.token)
    room = RoomID(r.body["chat_id"])
    assert (await client.send(room, {"msgtype": "m.text", "body": "Can we move to 3pm?"})).status
    assert room in await app.get_joined_rooms()

    async def client_message() -> bool:
        page = await app.get_messages(room, PaginationDirection.BACKWARD, limit=20)
        return any(
            ev.type == EventType.ROOM_MESSAGE and ev.content.body == "Can we move to 3pm?"
            for ev in page.events
        )

    await eventually(client_message)
    await app.send_message(room, TextMessageEventContent(MessageType.TEXT, "3pm works."))

    async def answer_seen() -> bool:
        r = await client.request("GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b")
        return any(ev["content"].get("body") == "3pm works." for ev in r.body["chunk"])

    await eventually(answer_seen)

    # A favourite set in the app is a pinned chat in the portal.
    await app.set_room_tag(room, "m.favourite", {"order": 0.5})

    async def pinned() -> bool:
        r = await api.call("GET", "/chats", token=portal.token)
        return any(c["chat_id"] == room and c["pinned"] for c in r.body["chats"])

    await eventually(pinned)


async def test_ending_signs_the_apps_out_and_the_password_stops_working(
    api: ApiClient, apps: Apps, bridge: Bridge, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    portal = await api.session_for(practice_id, staff_id="s1")
    grant = await _issue(api, practice_id, "s1")
    phone = await apps.sign_in(grant["username"], grant["password"])
    desktop = await apps.sign_in(grant["username"], grant["password"])

    r = await api.call("DELETE", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert r.status == 200, r.body
    assert r.body == {"user_id": grant["user_id"], "apps_signed_out": 2}
    await _signed_out(phone)
    await _signed_out(desktop)
    refused = await apps.refused(grant["username"], grant["password"])
    assert (refused.http_status, refused.errcode) == (403, "M_FORBIDDEN")
    # The portal's session is not an app's: it goes on.
    assert (await portal.whoami()).status == 200

    again = await api.call("DELETE", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert again.body["apps_signed_out"] == 0
    actions = [e.action for e in await bridge.audit.list(practice_id)]
    assert actions[:3] == ["app_login.ended", "app_login.ended", "app_login.issued"]


async def test_a_replaced_password_stops_working_at_once(
    api: ApiClient, apps: Apps, bridge: Bridge, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    first = await _issue(api, practice_id, "s1")
    old_app = await apps.sign_in(first["username"], first["password"])
    second = await _issue(api, practice_id, "s1")
    assert second["password"] != first["password"]

    refused = await apps.refused(first["username"], first["password"])
    assert refused.http_status == 403
    # Without logout=true the app signed in with the old password stays signed in.
    assert (await old_app.whoami()).user_id == first["user_id"]
    new_app = await apps.sign_in(second["username"], second["password"])

    portal = await api.session_for(practice_id, staff_id="s1")
    third = await _issue(api, practice_id, "s1", logout="true")
    await _signed_out(old_app)
    await _signed_out(new_app)
    assert (await portal.whoami()).status == 200
    await apps.sign_in(third["username"], third["password"])

    entries = await bridge.audit.list(practice_id)
    replaced = [e for e in entries if e.action == "app_login.replaced"]
    assert [e.details for e in replaced] == [{"apps_signed_out": 2}, {}]


async def test_a_client_never_gets_a_password(
    api: ApiClient, apps: Apps, bridge: Bridge, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    r = await api.call("POST", f"/practices/{practice_id}/staff/c1/matrix-login")
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.APP_LOGIN_STAFF_ONLY")
    r = await api.call("POST", f"/practices/{practice_id}/staff/nobody/matrix-login")
    assert (r.status, r.errcode) == (404, "M_NOT_FOUND")
    # A client account has no password Synapse would take.
    await api.session_for(practice_id, client_id="c1")
    client_user = bridge.mapper.user_id("client", practice_id, "c1")
    refused = await apps.refused(client_user, "")
    assert refused.http_status == 403


async def test_a_removed_team_members_password_no_longer_works(
    api: ApiClient, apps: Apps, bridge: Bridge, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    grant = await _issue(api, practice_id, "s1")
    app = await apps.sign_in(grant["username"], grant["password"])

    r = await api.call("DELETE", f"/practices/{practice_id}/staff/s1")
    assert r.status == 200, r.body
    await _signed_out(app)
    refused = await apps.refused(grant["username"], grant["password"])
    assert refused.http_status == 403
    r = await api.call("POST", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.STAFF_REMOVED")
    ended = [e for e in await bridge.audit.list(practice_id) if e.action == "app_login.ended"]
    assert ended[0].details["reason"] == "staff.removed"

    # Restored, they need a new password: the old one stays dead.
    await api.setup_practice(practice_id, clients=())
    refused = await apps.refused(grant["username"], grant["password"])
    assert refused.http_status == 403


async def test_no_password_is_ever_logged_or_audited(
    api: ApiClient,
    apps: Apps,
    bridge: Bridge,
    homeserver: HomeserverInfo,
    practice_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await api.setup_practice(practice_id)
    grant = await _issue(api, practice_id, "s1")
    await _issue(api, practice_id, "s1", logout="true")
    app = await apps.sign_in(grant["username"], (await _issue(api, practice_id, "s1"))["password"])
    await api.call("DELETE", f"/practices/{practice_id}/staff/s1/matrix-login")
    await api.call("DELETE", f"/practices/{practice_id}/staff/s1")
    audited = " ".join(str(e.to_json()) for e in await bridge.audit.list(practice_id))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    synapse_log = homeserver.log_path.read_text(errors="replace")
    for secret in (grant["password"], app.api.token):
        assert secret not in audited
        assert secret not in logged
        assert secret not in synapse_log
