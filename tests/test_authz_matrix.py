"""Who may do what: every operation of the provisioning API and every bot command, run as every
role against the real Synapse, allowed or refused as the product says
(docs/architecture.md#where-each-rule-is-enforced, docs/api.md, docs/chats.md).

The tables below are the product's authorization rules, one row per operation or command and
one column per role; the tests run every cell. ``docs/security.md`` prints the same tables:
``python -m tests.test_authz_matrix`` writes them there, and a test checks that it did.

The practice under test has an owner, a practitioner, two team members and clients. "The chat"
is the practitioner's 1:1 chat with the client, shared with the owner and with one team member
(the other has no share); for the family primary it is the practitioner's 1:1 chat about their
family member; for the revoked client, their own chat from before the practice removed them.
The outsider is the owner of another practice. A cell that changes a chat for good (convert,
share, delete) runs on a fresh chat of the same members when the table allows it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bridge.app import Bridge
from tests.clients import ApiClient, MatrixClient, Reply, eventually, processed
from tests.test_openapi import contract

C = contract()
PREFIX = "ORG.PRACTICEBRIDGE."
DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
START, END = "<!-- authz-matrix:start -->", "<!-- authz-matrix:end -->"


# -- roles ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    key: str
    title: str


BACKEND = Role("backend", "portal backend (shared secret)")
OWNER = Role("owner", "owner")
PRACTITIONER = Role("practitioner", "practitioner (the chat's)")
SHARED = Role("shared", "team member, chat shared")
UNSHARED = Role("unshared", "team member, not shared")
CLIENT = Role("client", "client (the chat's)")
PRIMARY = Role("primary", "family primary")
REVOKED = Role("revoked", "revoked client")
OUTSIDER = Role("outsider", "another practice's owner")
NO_AUTH = Role("none", "no auth")
WRONG = Role("wrong", "wrong secret")
ROLES = [
    BACKEND,
    OWNER,
    PRACTITIONER,
    SHARED,
    UNSHARED,
    CLIENT,
    PRIMARY,
    REVOKED,
    OUTSIDER,
    NO_AUTH,
    WRONG,
]
PEOPLE = [OWNER, PRACTITIONER, SHARED, UNSHARED, CLIENT, PRIMARY, REVOKED, OUTSIDER]
STAFF_ROLES = {OWNER, PRACTITIONER, SHARED, UNSHARED, OUTSIDER}

# -- expectations ---------------------------------------------------------------------------------
# API cells: "ok" (2xx), "own" (2xx about the caller's own practice only: nothing of the practice
# under test in the answer), or "<status> <errcode>" (ORG.PRACTICEBRIDGE. left out).

OK, OWN = "ok", "own"
FORBIDDEN = "403 M_FORBIDDEN"
NO_USER = "400 M_MISSING_PARAM"
STAFF_ONLY = "403 STAFF_ONLY"
OWNER_ONLY = "403 OWNER_ONLY"
NOT_CHAT_OWNER = "403 NOT_CHAT_OWNER"
NO_CHAT = "404 UNKNOWN_CHAT"
NO_CLIENT = "404 UNKNOWN_CLIENT"
NO_EXPORT = "403 EXPORT_NOT_ALLOWED"


@dataclass(frozen=True)
class Op:
    """One request: ``{practice_id}`` and ``{chat_id}`` are filled in per role."""

    method: str
    path: str
    body: Any = None  # a dict, or a function of the role giving one
    query: dict[str, str] = field(default_factory=dict)
    label: str = ""  # how the table names it, when the route alone does not say
    ends_chat: bool = False  # changes the chat for good: allowed cells get a fresh chat
    ids: dict[str, str] = field(default_factory=dict)  # the other ids in the path

    @property
    def name(self) -> str:
        return self.label or f"{self.method} {self.path}"

    def body_for(self, role: Role) -> Any:
        return self.body(role) if callable(self.body) else self.body


@dataclass(frozen=True)
class ApiRow:
    op: Op
    cells: dict[str, str]
    # The portal backend acting for the revoked client (?user_id=) on a user route.
    revoked_acting: str = "403 CLIENT_REMOVED"


def row(
    op: Op,
    backend: str,
    owner: str,
    practitioner: str,
    shared: str,
    unshared: str,
    client: str,
    primary: str,
    outsider: str,
    *,
    revoked_acting: str = "403 CLIENT_REMOVED",
) -> ApiRow:
    """A row; the revoked client's token, no token and a wrong secret are refused everywhere."""
    cells = {
        "backend": backend,
        "owner": owner,
        "practitioner": practitioner,
        "shared": shared,
        "unshared": unshared,
        "client": client,
        "primary": primary,
        "revoked": "401 M_UNKNOWN_TOKEN",
        "outsider": outsider,
        "none": "401 M_MISSING_TOKEN",
        "wrong": "401 M_UNKNOWN_TOKEN",
    }
    return ApiRow(op, cells, revoked_acting)


def _direct_body(role: Role) -> dict[str, str]:
    """Staff name a client; a client names a team member (a primary: for their family member)."""
    if role in STAFF_ROLES:
        return {"client_id": "c1"}
    if role is PRIMARY:
        return {"staff_id": "s1", "client_id": "kid"}
    return {"staff_id": "s1"}


PRACTICE_BODY = {"name": "Sunrise Wellness", "plan": "team", "timezone": "Europe/Berlin"}
STAFF_BODY = {"name": "Spare", "email": "t9@example.com", "role": "team_member"}
CLIENT_BODY = {
    "name": "Spare",
    "email": "c9@example.com",
    "activated": True,
    "portal_access": True,
}
AWAY = {"autoresponder": {"enabled": True, "message": "Away today.", "periods": []}}
CHAT = "/chats/{chat_id}"
P = "/practices/{practice_id}"
STAFF = P + "/staff/{staff_id}"
CLIENT_PATH = P + "/clients/{client_id}"
SPARE = {"staff_id": "t9", "client_id": "c9"}  # people only the backend changes

# Backend-only routes: the directory and sessions.
BACKEND_ROUTES = [
    row(Op("PUT", P, PRACTICE_BODY), OK, *[FORBIDDEN] * 7),
    row(Op("PUT", STAFF, STAFF_BODY, ids=SPARE), OK, *[FORBIDDEN] * 7),
    row(Op("DELETE", STAFF, ids=SPARE), OK, *[FORBIDDEN] * 7),
    row(Op("PUT", CLIENT_PATH, CLIENT_BODY, ids=SPARE), OK, *[FORBIDDEN] * 7),
    row(Op("DELETE", CLIENT_PATH, ids=SPARE), OK, *[FORBIDDEN] * 7),
    row(Op("POST", P + "/sessions", {"client_id": "c1"}), OK, *[FORBIDDEN] * 7),
    # Matrix app sign-in: for the unshared team member, whose portal session goes on after it.
    row(Op("POST", STAFF + "/matrix-login", ids={"staff_id": "t2"}), OK, *[FORBIDDEN] * 7),
    row(Op("DELETE", STAFF + "/matrix-login", ids={"staff_id": "t2"}), OK, *[FORBIDDEN] * 7),
    row(
        Op(
            "POST",
            STAFF + "/matrix-login",
            ids={"staff_id": "c1"},
            label="POST /practices/{practice_id}/staff/{staff_id}/matrix-login (a client's id)",
        ),
        "403 APP_LOGIN_STAFF_ONLY",
        *[FORBIDDEN] * 7,
    ),
]
# Routes that act as a portal user (the backend names them with ?user_id=). Cells many share,
# from the backend's to the client's (and the outsider's, where it ends in _OWN):
EVERYONE = (NO_USER, *[OK] * 6)  # the backend must name a user; everyone in the practice may
EVERYONE_OWN = (*EVERYONE, OWN)  # ... and the outsider sees their own practice's
STAFF_WORK = (NO_USER, *[OK] * 4, STAFF_ONLY, STAFF_ONLY)
# On a chat: its members (owner, practitioner, shared) may, the unshared member finds none;
# then the client's, the primary's and the outsider's cells.
IN_CHAT = (NO_USER, OK, OK, OK, NO_CHAT)
STAFF_IN_CHAT = (STAFF_ONLY, STAFF_ONLY, NO_CHAT)
NO_EXPORT_IN_CHAT = (NO_EXPORT, NO_EXPORT, NO_CHAT)
CHAT_OWNERS = (NO_USER, OK, OK, NOT_CHAT_OWNER, NO_CHAT, *STAFF_IN_CHAT)
TO_GROUP = {"name": "Group", "staff_ids": ["t2"]}
USER_ROUTES = [
    row(
        Op("GET", "/audit", query={"practice_id": "{practice_id}"}),
        OK,
        OK,
        *[FORBIDDEN] * 6,
        revoked_acting=FORBIDDEN,
    ),
    row(Op("GET", "/contacts"), *EVERYONE_OWN),
    row(Op("GET", "/chats"), *EVERYONE_OWN),
    row(Op("POST", "/chats/direct", _direct_body), *EVERYONE, NO_CLIENT),
    row(Op("POST", "/chats/direct/bulk", {"client_ids": ["c1"]}), *STAFF_WORK, OWN),
    row(
        Op("POST", "/chats/group", {"name": "Group", "client_ids": ["c1"]}), *STAFF_WORK, NO_CLIENT
    ),
    row(Op("POST", CHAT + "/convert", TO_GROUP, ends_chat=True), *IN_CHAT, *STAFF_IN_CHAT),
    row(Op("POST", CHAT + "/share", {"staff_id": "t2"}, ends_chat=True), *CHAT_OWNERS),
    row(Op("DELETE", CHAT, ends_chat=True), *CHAT_OWNERS),
    *[
        row(Op(method, f"{CHAT}/{flag}"), *IN_CHAT, OK, OK, NO_CHAT)
        for flag in ("pin", "hide", "unread")
        for method in ("PUT", "DELETE")
    ],
    row(Op("GET", CHAT + "/export", query={"format": "csv"}), *IN_CHAT, *NO_EXPORT_IN_CHAT),
    row(Op("GET", "/settings"), *EVERYONE_OWN),
    row(
        Op("PUT", "/settings", {"enter_key": "send"}, label="PUT /settings (own preferences)"),
        *EVERYONE_OWN,
    ),
    row(Op("PUT", "/settings", AWAY, label="PUT /settings (autoresponder)"), *STAFF_WORK, OWN),
    row(
        Op(
            "PUT",
            "/settings",
            {"practice": {"allow_direct_chat_sharing": True}},
            label="PUT /settings (practice)",
        ),
        NO_USER,
        OK,
        *[OWNER_ONLY] * 5,
        OWN,
    ),
    row(
        Op("PUT", CLIENT_PATH + "/direct-chat", {"enabled": True}, ids={"client_id": "c1"}),
        *[OK] * 5,
        *[STAFF_ONLY] * 3,
    ),
]
API_MATRIX = BACKEND_ROUTES + USER_ROUTES

# Bot commands: "ran", "refused <errcode>" (answered privately, nothing done), "ignored" (not
# taken as a command: clients' messages stay plain messages), "not in the room" (Synapse refuses
# the message: 403), "no session" (Synapse refuses the revoked client's token: 401).

RAN, IGNORED = "ran", "ignored"
NOT_IN_ROOM, NO_SESSION = "not in the room", "no session"
BAD_CODE = "refused BAD_COMMAND"


@dataclass(frozen=True)
class CommandRow:
    text: str
    where: str  # "chat": sent in the chat; "private": in the staff member's room with the bot
    cells: dict[str, str]
    ends_chat: bool = False

    @property
    def name(self) -> str:
        return self.text.replace("{code}", "<the practitioner's code>")


def command(
    text: str,
    where: str,
    owner: str,
    practitioner: str,
    shared: str,
    unshared: str,
    outsider: str,
    *,
    ends_chat: bool = False,
) -> CommandRow:
    """A command; clients' commands are ignored, the revoked client has no session."""
    cells = {
        "owner": owner,
        "practitioner": practitioner,
        "shared": shared,
        "unshared": unshared,
        "client": IGNORED,
        "primary": IGNORED,
        "revoked": NO_SESSION,
        "outsider": outsider,
    }
    return CommandRow(text, where, cells, ends_chat)


IN_CHAT = (RAN, RAN, RAN, NOT_IN_ROOM, NOT_IN_ROOM)
COMMAND_MATRIX = [
    command("!pb help", "private", RAN, RAN, RAN, RAN, RAN),
    command("!pb contacts", "private", RAN, RAN, RAN, RAN, RAN),
    command("!pb chat c1", "private", RAN, RAN, RAN, RAN, "refused NOT_FOUND"),
    *[command(f"!pb {flag}", "chat", *IN_CHAT) for flag in ("pin", "unpin", "hide", "unhide")],
    command("!pb export csv", "chat", *IN_CHAT),
    command("!pb add c2", "chat", *IN_CHAT, ends_chat=True),
    command(
        "!pb share t2",
        "chat",
        RAN,
        RAN,
        "refused NOT_CHAT_OWNER",
        NOT_IN_ROOM,
        NOT_IN_ROOM,
        ends_chat=True,
    ),
    command("!pb delete", "chat", RAN, RAN, "refused NOT_CHAT_OWNER", NOT_IN_ROOM, NOT_IN_ROOM),
    command("!pb confirm delete {code}", "private", BAD_CODE, RAN, BAD_CODE, BAD_CODE, BAD_CODE),
]


# -- the practice ---------------------------------------------------------------------------------


@dataclass
class Cast:
    """The people of the practice under test (and the outsider), their sessions and chats."""

    api: ApiClient
    bridge: Bridge
    practice_id: str
    sessions: dict[str, MatrixClient]  # role key -> session
    chats: dict[str, str]  # role key -> the chat this role acts on
    private: dict[str, str] = field(default_factory=dict)  # role key -> room with the bot

    def user_id(self, role: Role) -> str:
        return self.sessions[role.key].user_id

    async def fresh_chat(self) -> str:
        """A new chat like the shared one: the practitioner and a client, shared with the
        owner and the shared team member."""
        practitioner = self.sessions[PRACTITIONER.key]
        r = await self.api.call(
            "POST",
            "/chats/direct",
            {"client_id": "c3", "create_new": True},
            token=practitioner.token,
        )
        assert r.status in (200, 201), r.body
        chat = str(r.body["chat_id"])
        for staff_id in ("boss", "t1"):
            r = await self.api.call(
                "POST",
                f"/chats/{quote(chat)}/share",
                {"staff_id": staff_id},
                token=practitioner.token,
            )
            assert r.status == 200, r.body
        return chat


async def _private_room(bridge: Bridge, who: MatrixClient) -> str:
    """What a Matrix app does to talk to the bot: a direct room with it, which it adopts."""
    bot = bridge.mapper.bot_mxid
    r = await who.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "trusted_private_chat", "is_direct": True, "invite": [bot]},
    )
    assert r.status == 200, r.body
    room = str(r.body["room_id"])

    async def adopted() -> bool:
        return await bridge.commands.store.private_room(who.user_id) == room

    await eventually(adopted, timeout=30)
    return room


async def _cast(api: ApiClient, bridge: Bridge, practice_id: str) -> Cast:
    await api.setup_practice(
        practice_id,
        staff=(
            ("boss", "owner"),
            ("s1", "practitioner"),
            ("t1", "team_member"),
            ("t2", "team_member"),
            ("t9", "team_member"),
        ),
        clients=("c1", "c2", "c3", "fam", "gone", "c9"),
    )
    kid = {"name": "Kid", "email": "fam@example.com", "activated": True, "portal_access": True}
    r = await api.call(
        "PUT", f"/practices/{practice_id}/clients/kid", kid | {"family_primary_id": "fam"}
    )
    assert r.status == 201, r.body
    other = f"q{uuid.uuid4().hex[:10]}"
    await api.setup_practice(other, staff=(("qboss", "owner"),), clients=("qc1",))
    sessions = {
        OWNER.key: await api.session_for(practice_id, staff_id="boss"),
        PRACTITIONER.key: await api.session_for(practice_id, staff_id="s1"),
        SHARED.key: await api.session_for(practice_id, staff_id="t1"),
        UNSHARED.key: await api.session_for(practice_id, staff_id="t2"),
        CLIENT.key: await api.session_for(practice_id, client_id="c1"),
        PRIMARY.key: await api.session_for(practice_id, client_id="fam"),
        REVOKED.key: await api.session_for(practice_id, client_id="gone"),
        OUTSIDER.key: await api.session_for(other, staff_id="qboss"),
    }
    practitioner = sessions[PRACTITIONER.key]

    async def direct(client_id: str) -> str:
        r = await api.call(
            "POST", "/chats/direct", {"client_id": client_id}, token=practitioner.token
        )
        assert r.status == 201, r.body
        return str(r.body["chat_id"])

    chat, family, gone = await direct("c1"), await direct("kid"), await direct("gone")
    for staff_id in ("boss", "t1"):
        r = await api.call(
            "POST", f"/chats/{quote(chat)}/share", {"staff_id": staff_id}, token=practitioner.token
        )
        assert r.status == 200, r.body
    r = await api.call("DELETE", f"/practices/{practice_id}/clients/gone")
    assert r.status == 200, r.body
    chats = {role.key: chat for role in ROLES}
    chats[PRIMARY.key], chats[REVOKED.key] = family, gone
    return Cast(api, bridge, practice_id, sessions, chats)


# -- running the API cells ------------------------------------------------------------------------


def _expected(cell: str) -> tuple[int, str | None]:
    if cell in (OK, OWN):
        return 200, None
    status, errcode = cell.split(" ", 1)
    return int(status), errcode if errcode.startswith("M_") else PREFIX + errcode


async def _call(cast: Cast, op: Op, role: Role, chat: str, acting: bool) -> tuple[Reply, str]:
    """Run one cell; the reply and the path (under the prefix) it went to."""
    path = op.path.format(practice_id=cast.practice_id, chat_id=quote(chat), **op.ids)
    params = {k: v.format(practice_id=cast.practice_id) for k, v in op.query.items()}
    body = op.body_for(role)
    if acting:  # the portal backend acting for the person
        params["user_id"] = cast.user_id(role)
        return await cast.api.call(op.method, path, body, params=params), path
    if role is BACKEND:
        return await cast.api.call(op.method, path, body, params=params), path
    if role is NO_AUTH:
        return await cast.api.call(op.method, path, body, params=params, auth=False), path
    token = "not-the-secret" if role is WRONG else cast.sessions[role.key].token
    return await cast.api.call(op.method, path, body, params=params, token=token), path


def _judge(cast: Cast, op: Op, role: Role, cell: str, reply: Reply, path: str) -> str | None:
    """What is wrong with this answer, if anything."""
    status, errcode = _expected(cell)
    got = (reply.status, reply.errcode)
    allowed = 200 <= reply.status < 300
    if (cell in (OK, OWN) and not allowed) or (cell not in (OK, OWN) and got != (status, errcode)):
        return f"expected {cell}, got {reply.status} {reply.body!r:.300}"
    if isinstance(reply.body, dict | list):
        try:
            C.check(op.method, path, reply)
        except AssertionError as e:
            return f"not as documented: {e}"
    if cell == OWN and cast.practice_id in json.dumps(reply.body):
        return f"an answer about another practice names this one: {reply.body!r:.300}"
    return None


# A Synapse that has just started may refuse to purge a room its sliding sync background update
# has yet to reach (a foreign key from sliding_sync_joined_rooms_to_recalculate): the bridge
# answers DELETE_FAILED, nothing is removed, and the same request succeeds a little later.
_DELETE_TRIES = 10


async def _run_api(cast: Cast, rows: list[ApiRow], *, acting: bool) -> list[str]:
    """Every cell of these rows; the roles of a row side by side (they do not meet: what one
    cell changes for good happens on a fresh chat of its own)."""
    problems: list[str] = []

    async def cell_of(api_row: ApiRow, role: Role) -> None:
        op, cell = api_row.op, api_row.cells[role.key]
        if acting and role is REVOKED:
            cell = api_row.revoked_acting  # a user who no longer has access
        chat = cast.chats[role.key]
        if op.ends_chat and cell in (OK, OWN):
            chat = await cast.fresh_chat()
        reply, path = await _call(cast, op, role, chat, acting)
        for _ in range(_DELETE_TRIES):
            if reply.errcode != PREFIX + "DELETE_FAILED":
                break
            await asyncio.sleep(1)  # nothing was removed: ask again, as the answer says
            reply, path = await _call(cast, op, role, chat, acting)
        problem = _judge(cast, op, role, cell, reply, path)
        if problem:
            how = "backend acting for " if acting else ""
            problems.append(f"{op.name} as {how}{role.title}: {problem}")

    for api_row in rows:
        await asyncio.gather(*(cell_of(api_row, role) for role in (PEOPLE if acting else ROLES)))
    return problems


# -- running the command cells --------------------------------------------------------------------


async def _outcome(bridge: Bridge, event_id: str) -> str:
    """What became of a message: the command's outcome, or 'ignored'."""

    await processed(bridge.db, event_id, timeout=30)
    if not await bridge.db.fetchval("SELECT 1 FROM bot_command WHERE event_id=$1", event_id):
        return IGNORED

    async def done() -> Any:
        return await bridge.db.fetchrow(
            "SELECT outcome FROM bot_command WHERE event_id=$1 AND done_at IS NOT NULL", event_id
        )

    outcome = str((await eventually(done, timeout=30))["outcome"])
    if outcome == "ok":
        return RAN
    if outcome.startswith("refused:" + PREFIX):
        return "refused " + outcome.removeprefix("refused:" + PREFIX)
    return outcome


async def _send_command(cast: Cast, role: Role, room: str, text: str) -> str:
    who = cast.sessions[role.key]
    sent = await who.send(room, {"msgtype": "m.text", "body": text})
    if sent.status == 401:
        return NO_SESSION
    if sent.status == 403:
        return NOT_IN_ROOM
    assert sent.status == 200, sent.body
    return await _outcome(cast.bridge, str(sent.body["event_id"]))


async def _confirmation_code(cast: Cast, chat: str) -> str:
    """The practitioner asks to delete a chat; the code the bot sent them."""
    practitioner = cast.sessions[PRACTITIONER.key]
    assert await _send_command(cast, PRACTITIONER, chat, "!pb delete") == RAN
    code = await cast.bridge.db.fetchval(
        "SELECT code FROM bot_confirmation WHERE user_id=$1 AND target=$2",
        practitioner.user_id,
        chat,
    )
    return str(code)


async def _run_commands(cast: Cast) -> list[str]:
    """Every command as every person, the people of a row side by side; the practitioner's
    confirmation last, as it uses the code up."""
    problems: list[str] = []
    code = await _confirmation_code(cast, await cast.fresh_chat())

    async def cell_of(command_row: CommandRow, role: Role) -> None:
        cell = command_row.cells[role.key]
        if command_row.where == "private" and role.key in cast.private:
            room = cast.private[role.key]
        elif command_row.ends_chat and cell == RAN:
            room = await cast.fresh_chat()
        else:
            room = cast.chats[role.key]
        got = await _send_command(cast, role, room, command_row.text.format(code=code))
        for _ in range(_DELETE_TRIES):
            if got != "refused DELETE_FAILED":
                break
            await asyncio.sleep(1)  # the code is used up and nothing was removed: start over
            again = await _confirmation_code(cast, await cast.fresh_chat())
            got = await _send_command(cast, role, room, command_row.text.format(code=again))
        if got != cell:
            problems.append(f"{command_row.name} as {role.title}: expected {cell}, got {got}")

    for command_row in COMMAND_MATRIX:
        others = [role for role in PEOPLE if role is not PRACTITIONER]
        await asyncio.gather(*(cell_of(command_row, role) for role in others))
        await cell_of(command_row, PRACTITIONER)
    return problems


# -- the tests ------------------------------------------------------------------------------------


async def test_every_operation_and_command_as_every_role(
    api: ApiClient, bridge: Bridge, practice_id: str
) -> None:
    cast = await _cast(api, bridge, practice_id)
    problems = await _run_api(cast, API_MATRIX, acting=False)
    # The portal backend acting for a person (?user_id=) gets what the person's own token gets,
    # on every route that acts as a user.
    problems += await _run_api(cast, USER_ROUTES, acting=True)
    staff = [OWNER, PRACTITIONER, SHARED, UNSHARED, OUTSIDER]
    rooms = await asyncio.gather(*(_private_room(bridge, cast.sessions[r.key]) for r in staff))
    cast.private = {role.key: room for role, room in zip(staff, rooms, strict=True)}
    problems += await _run_commands(cast)
    assert not problems, f"{len(problems)} cells differ:\n" + "\n".join(problems)


def test_the_matrix_covers_every_documented_operation_and_command() -> None:
    from appservice.commands.parse import COMMANDS

    documented = {
        f"{method} {template}"
        for method, template, op in C.operations()
        if op.get("security", C.doc["security"]) != []
    }
    assert {f"{r.op.method} {r.op.path}" for r in API_MATRIX} == documented
    ran = {r.text.split()[1] for r in COMMAND_MATRIX}
    assert ran == set(COMMANDS), set(COMMANDS) ^ ran


# -- the tables in docs/security.md ---------------------------------------------------------------

_CELL_TEXT: dict[str, str] = {OK: "✓", OWN: "✓ own practice"}


def _api_cell(cell: str) -> str:
    if cell in _CELL_TEXT:
        return _CELL_TEXT[cell]
    return f"✗ {cell}"


def _command_cell(cell: str) -> str:
    return "✓" if cell == RAN else f"✗ {cell}"


def render() -> str:
    """The matrix as the Markdown docs/security.md holds between its markers."""
    lines = [START, "", "#### Provisioning API", ""]
    header = "| operation | " + " | ".join(role.title for role in ROLES) + " |"
    lines += [header, "|---" * (len(ROLES) + 1) + "|"]
    for api_row in API_MATRIX:
        name = api_row.op.name.replace("{practice_id}", "{p}").replace("|", "\\|")
        cells = " | ".join(_api_cell(api_row.cells[role.key]) for role in ROLES)
        lines.append(f"| `{name}` | {cells} |")
    lines += ["", "#### Bot commands", ""]
    header = "| command | where | " + " | ".join(role.title for role in PEOPLE) + " |"
    lines += [header, "|---" * (len(PEOPLE) + 2) + "|"]
    for command_row in COMMAND_MATRIX:
        where = "in the chat" if command_row.where == "chat" else "private room"
        cells = " | ".join(_command_cell(command_row.cells[role.key]) for role in PEOPLE)
        lines.append(f"| `{command_row.name}` | {where} | {cells} |")
    lines += ["", END]
    return "\n".join(lines)


def test_docs_security_md_prints_this_matrix() -> None:
    text = DOC.read_text()
    match = re.search(re.escape(START) + ".*?" + re.escape(END), text, re.S)
    assert match, f"{DOC} has no {START} ... {END} block"
    assert match.group(0) == render(), "run: .venv/bin/python -m tests.test_authz_matrix"


def write_docs() -> None:
    text = DOC.read_text()
    block = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    assert block.search(text), f"{DOC} has no {START} ... {END} block"
    DOC.write_text(block.sub(lambda _: render(), text))


if __name__ == "__main__":
    write_docs()
    sys.exit(0)
