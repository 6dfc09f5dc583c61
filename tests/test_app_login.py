"""Staff in standard Matrix apps: the portal backend issues a password, and a Matrix client
library signs in with the normal password login, as Element does (mautrix's ClientAPI, never a
minted token). Ending the sign-in, replacing the password and removing the person are seen from
that app, on the real Synapse."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
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

ADMIN_DOC = Path(__file__).resolve().parent.parent / "docs" / "admin.md"


class Apps:
    """Matrix apps signed in during a test; every one is closed at the end."""

    def __init__(self, homeserver: HomeserverInfo) -> None:
        self.url = homeserver.url
        self.open: list[ClientAPI] = []

    async def sign_in(
        self, username: str, password: str, device_id: str | None = None
    ) -> ClientAPI:
        """POST /login with m.login.password and the username, as an app's sign-in form."""
        app = ClientAPI(base_url=self.url)
        self.open.append(app)
        await app.login(
            identifier=username,
            login_type=LoginType.PASSWORD,
            password=password,
            device_name="Element",
            device_id=device_id,
        )
        return app

    async def refused(
        self, username: str, password: str, device_id: str | None = None
    ) -> MatrixRequestError:
        with pytest.raises(MatrixRequestError) as refused:
            await self.sign_in(username, password, device_id)
        return refused.value

    async def assert_refused(
        self,
        username: str,
        password: str,
        status: int = 403,
        errcode: str | None = "M_FORBIDDEN",
        device_id: str | None = None,
    ) -> None:
        """The sign-in fails with ``status`` (and ``errcode``, unless None)."""
        refused = await self.refused(username, password, device_id)
        assert refused.http_status == status, (username, device_id)
        if errcode is not None:
            assert refused.errcode == errcode, (username, device_id)

    async def issue_and_sign_in(
        self, api: ApiClient, practice_id: str, staff_id: str = "s1"
    ) -> tuple[dict[str, Any], ClientAPI]:
        """A Matrix password issued for the staff member, and an app signed in with it."""
        grant = await _issue(api, practice_id, staff_id)
        return grant, await self.sign_in(grant["username"], grant["password"])

    async def aclose(self) -> None:
        for app in self.open:
            await app.api.session.close()


@pytest.fixture
async def apps(homeserver: HomeserverInfo) -> AsyncIterator[Apps]:
    async with aclosing(Apps(homeserver)) as held:
        yield held


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
    grant, phone = await apps.issue_and_sign_in(api, practice_id)
    desktop = await apps.sign_in(grant["username"], grant["password"])

    r = await api.call("DELETE", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert r.status == 200, r.body
    assert r.body == {"user_id": grant["user_id"], "apps_signed_out": 2}
    await _signed_out(phone)
    await _signed_out(desktop)
    await apps.assert_refused(grant["username"], grant["password"])
    # The portal's session is not an app's: it goes on.
    assert (await portal.whoami()).status == 200

    again = await api.call("DELETE", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert again.body["apps_signed_out"] == 0
    actions = [e.action for e in await bridge.audit.list(practice_id)]
    assert actions[:3] == ["app_login.ended", "app_login.ended", "app_login.issued"]


async def test_an_app_cannot_hide_on_a_device_of_the_bridge(
    api: ApiClient, apps: Apps, practice_id: str
) -> None:
    """Ending the sign-in spares the portal's devices and the bridge's chat-list device: an app
    may not sign in on one of them, or it would outlive the end."""
    await api.setup_practice(practice_id)
    portal = await api.session_for(practice_id, staff_id="s1")
    devices = await portal.request("GET", "/_matrix/client/v3/devices")
    (device,) = [d["device_id"] for d in devices.body["devices"]]
    assert device.startswith("PBPORTAL_")
    grant = await _issue(api, practice_id, "s1")
    for taken in (device, "PBPORTAL_MINE", "PRACTICEBRIDGE"):
        await apps.assert_refused(grant["username"], grant["password"], device_id=taken)
    app = await apps.sign_in(grant["username"], grant["password"], "MYPHONE")
    r = await api.call("DELETE", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert r.body["apps_signed_out"] == 1
    await _signed_out(app)
    assert (await portal.whoami()).status == 200


async def test_a_replaced_password_stops_working_at_once(
    api: ApiClient, apps: Apps, bridge: Bridge, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    first, old_app = await apps.issue_and_sign_in(api, practice_id)
    second = await _issue(api, practice_id, "s1")
    assert second["password"] != first["password"]

    await apps.assert_refused(first["username"], first["password"], errcode=None)
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
    await apps.assert_refused(client_user, "", errcode=None)

    # Even with a password set behind the bridge's back (an admin, Synapse's admin API), the
    # Synapse module refuses the login: by user id and by bare username alike.
    await bridge.homeserver.set_password(client_user, "a password an admin set")
    for username in (client_user, client_user[1:].split(":")[0]):
        await apps.assert_refused(
            username, "a password an admin set", errcode="ORG.PRACTICEBRIDGE.APP_LOGIN_STAFF_ONLY"
        )
    # A wrong password is just wrong, and the portal's sessions are minted as before.
    await apps.assert_refused(client_user, "a guess")
    portal = await api.session_for(practice_id, client_id="c1")
    assert (await portal.whoami()).status == 200


async def test_a_removed_team_members_password_no_longer_works(
    api: ApiClient, apps: Apps, bridge: Bridge, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    grant, app = await apps.issue_and_sign_in(api, practice_id)

    r = await api.call("DELETE", f"/practices/{practice_id}/staff/s1")
    assert r.status == 200, r.body
    await _signed_out(app)
    await apps.assert_refused(grant["username"], grant["password"], errcode=None)
    r = await api.call("POST", f"/practices/{practice_id}/staff/s1/matrix-login")
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.STAFF_REMOVED")
    ended = [e for e in await bridge.audit.list(practice_id) if e.action == "app_login.ended"]
    assert ended[0].details["reason"] == "staff.removed"

    # Restored, they need a new password: the old one stays dead.
    await api.setup_practice(practice_id, clients=())
    await apps.assert_refused(grant["username"], grant["password"], errcode=None)


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


# -- what the practitioner sees in the app --------------------------------------------------


async def _room_name(app: ClientAPI, room: RoomID) -> str | None:
    try:
        return (await app.get_state_event(room, EventType.ROOM_NAME)).name
    except MatrixRequestError:
        return None


async def test_the_app_shows_each_chat_by_what_it_is_and_the_bot_room_with_its_commands(
    api: ApiClient, apps: Apps, bridge: Bridge, practice_id: str
) -> None:
    await api.setup_practice(practice_id, clients=("c1", "fam"))
    kid = {"name": "Kid", "email": "kid@example.com", "activated": True, "portal_access": True}
    r = await api.call(
        "PUT", f"/practices/{practice_id}/clients/kid", kid | {"family_primary_id": "fam"}
    )
    assert r.status == 201, r.body
    portal = await api.session_for(practice_id, staff_id="s1")

    async def chat(path: str, body: dict[str, Any]) -> RoomID:
        r = await api.call("POST", path, body, token=portal.token)
        assert r.status == 201, r.body
        return RoomID(r.body["chat_id"])

    direct = await chat("/chats/direct", {"client_id": "c1"})
    family = await chat("/chats/direct", {"client_id": "kid"})
    group = await chat("/chats/group", {"name": "Tuesday group", "client_ids": ["c1", "fam"]})

    grant, app = await apps.issue_and_sign_in(api, practice_id)
    assert {direct, family, group} <= set(await app.get_joined_rooms())
    assert await _room_name(app, direct) == "Client c1"
    assert await _room_name(app, family) == "Kid (family of Client fam)"
    assert await _room_name(app, group) == "Tuesday group"

    # Renamed in the portal's directory: renamed in the app.
    body = {"name": "Maria Lopez", "email": "fam@example.com", "activated": True}
    r = await api.call(
        "PUT", f"/practices/{practice_id}/clients/fam", body | {"portal_access": True}
    )
    assert r.status == 200, r.body

    async def renamed() -> bool:
        return await _room_name(app, family) == "Kid (family of Maria Lopez)"

    await eventually(renamed)

    # The private room with the bot is there, as a direct chat, its first message the commands.
    bot = bridge.mapper.bot_mxid
    private = RoomID((await app.get_account_data("m.direct"))[bot][-1])
    assert private in await app.get_joined_rooms()
    first = await app.get_messages(private, PaginationDirection.FORWARD, limit=50)
    messages = [ev for ev in first.events if ev.type == EventType.ROOM_MESSAGE]
    assert messages[0].sender == bot
    assert "!pb help" in messages[0].content.body
    assert "!pb chat <client>" in messages[0].content.body

    await app.send_message(private, TextMessageEventContent(MessageType.TEXT, "!pb help"))

    async def answered() -> bool:
        page = await app.get_messages(private, PaginationDirection.BACKWARD, limit=20)
        return any(
            ev.type == EventType.ROOM_MESSAGE
            and ev.sender == bot
            and ev.content.body.startswith("Practice bot commands")
            for ev in page.events
        )

    await eventually(answered, timeout=30)


async def _tags(app: ClientAPI, room: RoomID) -> set[str]:
    return set((await app.get_room_tags(room)).tags)


async def test_portal_pins_unread_marks_and_hidden_chats_are_what_the_app_shows(
    api: ApiClient, apps: Apps, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    portal = await api.session_for(practice_id, staff_id="s1")
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=portal.token)
    room = RoomID(r.body["chat_id"])
    grant, app = await apps.issue_and_sign_in(api, practice_id)
    chat = f"/chats/{room}"

    assert (await api.call("PUT", chat + "/pin", token=portal.token)).status == 200
    assert "m.favourite" in await _tags(app, room)
    assert (await api.call("PUT", chat + "/unread", token=portal.token)).status == 200
    for event_type in ("m.marked_unread", "com.famedly.marked_unread"):
        assert (await app.get_account_data(event_type, room))["unread"] is True
    assert (await api.call("PUT", chat + "/hide", token=portal.token)).status == 200
    assert "m.lowpriority" in await _tags(app, room)

    async def hidden_in_portal() -> bool | None:
        r = await api.call("GET", "/chats", token=portal.token, params={"include_hidden": "true"})
        return next(c["hidden"] for c in r.body["chats"] if c["chat_id"] == room)

    # Out of low priority in the app: shown in the portal again; into it: hidden there.
    await app.remove_room_tag(room, "m.lowpriority")

    async def shown() -> bool:
        return await hidden_in_portal() is False

    await eventually(shown)
    await app.set_room_tag(room, "m.lowpriority", {"order": 0.5})

    async def hidden() -> bool:
        return await hidden_in_portal() is True

    await eventually(hidden)
    assert (await api.call("DELETE", chat + "/hide", token=portal.token)).status == 200
    assert not {"m.lowpriority", "org.practicebridge.hidden"} & await _tags(app, room)


async def test_the_demo_prints_each_team_members_matrix_app_sign_in(
    apps: Apps, bridge: Bridge, homeserver: HomeserverInfo
) -> None:
    """`make run DEMO=1` prints what a person types into Element: it signs in."""
    from bridge.demo import STAFF, format_logins, seed_demo

    logins = await seed_demo(bridge.directory, bridge.app_logins, bridge.chats)
    printed = format_logins(logins, homeserver.url)
    staff = [login for login in logins if login.app is not None]
    assert [login.name for login in staff] == [name for _, name, _ in STAFF]
    for login in reversed(staff):  # the owner last: their app is looked at below
        assert login.app is not None
        for line in (login.app.homeserver, login.app.username, login.app.password):
            assert line in printed
        app = await apps.sign_in(login.app.username, login.app.password)
        assert (await app.whoami()).user_id == login.app.user_id
    # The owner's app shows their chats under their names; a second run opens the same ones.
    names = {await _room_name(app, room) for room in await app.get_joined_rooms()}
    assert {"Alex Moreau", "Robin Lee (family of Morgan Lee)", "Tuesday group"} <= names
    again = await seed_demo(bridge.directory, bridge.app_logins, bridge.chats)
    rooms = await bridge.chat_store.for_member("demo", "staff", ["dana"])
    assert len(rooms) == 3 and len(again) == len(logins)


def test_the_documented_single_sign_on_maps_staff_onto_their_accounts(
    homeserver: HomeserverInfo,
) -> None:
    """docs/admin.md's `oidc_providers` entry is valid Synapse config, and its mapping (rendered
    as Synapse's default mapping provider renders it, Jinja over the provider's claims) gives a
    team member the localpart of the account the bridge made for them."""
    from jinja2 import Environment
    from ruamel.yaml import YAML
    from synapse.config._util import validate_config
    from synapse.config.oidc import OIDC_PROVIDER_CONFIG_WITH_ID_SCHEMA
    from synapse.config.sso import SsoAttributeRequirement

    (block,) = re.findall(r"```yaml\n(oidc_providers:.*?)```", ADMIN_DOC.read_text(), re.S)
    (entry,) = YAML(typ="safe").load(block)["oidc_providers"]
    # Synapse's own schema of an entry (loading the mapping provider needs its oidc extra).
    validate_config(OIDC_PROVIDER_CONFIG_WITH_ID_SCHEMA, entry, ("oidc_providers", "<item 0>"))
    assert entry["allow_existing_users"] is True and entry["enable_registration"] is False
    (staff_only,) = [SsoAttributeRequirement(**r) for r in entry["attribute_requirements"]]
    assert staff_only.one_of == ["owner", "practitioner", "team_member"]

    mapping = entry["user_mapping_provider"]["config"]
    claims = {"sub": "42", "practice_id": "demo", "staff_id": "dana", "name": "Dana Whitfield"}
    localpart = Environment().from_string(mapping["localpart_template"]).render(user=claims)
    mapper = homeserver.config.identity_mapper()
    assert f"@{localpart}:{mapper.domain}" == mapper.user_id("staff", "demo", "dana")
