"""The demo practice of `make run DEMO=1`: a few people to try the bridge with any Matrix client.

Seeding goes through :class:`DirectoryService`, as the provisioning API does, so a second run
updates the same records instead of failing; every run mints a fresh session for each person
with an account, and issues each team member a fresh Matrix app password (the previous run's
stops working), for Element and the other standard Matrix apps. The owner's chats are opened
(again: the same ones) so that an app shows them under their names at once. The family's
sub-record gets no account: its primary answers for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bridge.chats.actors import resolve_actor
from bridge.chats.service import ChatService
from bridge.directory import DirectoryService, Role, SessionGrant
from bridge.directory.applogin import AppLogin, AppLoginService

PRACTICE_ID = "demo"
PRACTICE_NAME = "Demo Wellness Studio"
PLAN = "team"
TIMEZONE = "Europe/Berlin"
ACTOR = "demo"

# staff_id, name, role
STAFF: tuple[tuple[str, str, Role], ...] = (
    ("dana", "Dana Whitfield", "owner"),
    ("toni", "Toni Brandt", "team_member"),
)
# client_id, name, family primary (None for a client with their own login)
CLIENTS: tuple[tuple[str, str, str | None], ...] = (
    ("alex", "Alex Moreau", None),
    ("sam", "Sam Okafor", None),
    ("morgan", "Morgan Lee", None),
    ("robin", "Robin Lee", "morgan"),
)


@dataclass(frozen=True)
class DemoLogin:
    name: str
    role: str
    grant: SessionGrant
    #: Mints another fresh session for the same person (the Messenger's demo page).
    mint: Callable[[], Awaitable[dict[str, Any]]]
    #: A team member's Matrix app sign-in (None for clients, who never get one).
    app: AppLogin | None = None


def _role_of_client(client_id: str) -> str:
    members = [name for cid, name, primary in CLIENTS if primary == client_id]
    return f"client, family primary of {', '.join(members)}" if members else "client"


# The owner's chats: 1:1 with these clients (a family member's included), and one group.
OWNER_DIRECT = ("alex", "robin")
GROUP_NAME = "Tuesday group"
GROUP_CLIENTS = ["sam", "morgan"]


async def seed_demo(
    directory: DirectoryService,
    app_logins: AppLoginService | None = None,
    chats: ChatService | None = None,
) -> list[DemoLogin]:
    """Create or update the demo practice and return a fresh session for each of its accounts
    (with ``app_logins``, and a Matrix app password for each team member; with ``chats``, the
    owner's chats opened)."""
    await directory.put_practice(PRACTICE_ID, PRACTICE_NAME, PLAN, TIMEZONE, ACTOR)
    for staff_id, name, role in STAFF:
        await directory.put_staff(
            PRACTICE_ID, staff_id, name, f"{staff_id}@example.com", role, ACTOR
        )
    for client_id, name, primary in CLIENTS:
        await directory.put_client(
            PRACTICE_ID,
            client_id,
            name,
            f"{primary or client_id}@example.com",
            activated=True,
            portal_access=True,
            family_primary_id=primary,
            actor=ACTOR,
        )
    if chats is not None:
        await _owner_chats(directory, chats)
    logins = []
    for staff_id, name, role in STAFF:
        grant = await directory.mint_staff_session(PRACTICE_ID, staff_id, ACTOR)
        mint = _minter(directory.mint_staff_session, staff_id)
        app = None
        if app_logins is not None:
            app = await app_logins.issue(PRACTICE_ID, staff_id, logout=False, actor=ACTOR)
        logins.append(DemoLogin(name, role.replace("_", " "), grant, mint, app))
    for client_id, name, primary in CLIENTS:
        if primary is None:
            grant = await directory.mint_client_session(PRACTICE_ID, client_id, ACTOR)
            mint = _minter(directory.mint_client_session, client_id)
            logins.append(DemoLogin(name, _role_of_client(client_id), grant, mint))
    return logins


async def _owner_chats(directory: DirectoryService, chats: ChatService) -> None:
    owner_id = STAFF[0][0]
    owner = await resolve_actor(
        directory.store, directory.mapper.user_id("staff", PRACTICE_ID, owner_id)
    )
    for client_id in OWNER_DIRECT:
        await chats.start_direct(
            owner, client_id=client_id, staff_id=None, chat_id=None, create_new=False
        )
    mine = await chats.chats.for_member(PRACTICE_ID, "staff", [owner_id])
    if not any(c.kind == "group" and c.name == GROUP_NAME for c in mine):
        await chats.create_group(owner, GROUP_NAME, GROUP_CLIENTS, [])


def _minter(
    mint: Callable[[str, str, str], Awaitable[SessionGrant]], person_id: str
) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def fresh() -> dict[str, Any]:
        return (await mint(PRACTICE_ID, person_id, ACTOR)).to_json()

    return fresh


def format_logins(
    logins: list[DemoLogin], homeserver_url: str, messenger_links: list[str] | None = None
) -> str:
    """The sessions as text a person can copy into a Matrix client (tokens included), for each
    person the link that opens the Messenger as them, and the team's Matrix app sign-in."""
    names = {client_id: name for client_id, name, _ in CLIENTS}
    members = ", ".join(
        f"{name} (through {names[primary]})" for _, name, primary in CLIENTS if primary
    )
    lines = [
        "",
        f"Demo practice '{PRACTICE_ID}': {PRACTICE_NAME}, plan {PLAN}, time zone {TIMEZONE}.",
        f"Family members without an account: {members}.",
        f"Log in with any Matrix client that accepts an access token; homeserver {homeserver_url}",
        "",
    ]
    apps = [login for login in logins if login.app is not None]
    if apps:
        lines += [
            "Sign in to Element (or another Matrix app) as a team member: homeserver, username,",
            "password as below (docs/admin.md#staff-in-element; a new password every run):",
            "",
        ]
        for login in apps:
            assert login.app is not None
            lines += [
                f"  {login.name} ({login.role})",
                f"    homeserver:   {login.app.homeserver}",
                f"    username:     {login.app.username}",
                f"    password:     {login.app.password}",
                "",
            ]
    if messenger_links:
        lines += [
            "Open the portal Messenger as a demo person in a browser on this machine (the part",
            "after # never reaches a server; each opening mints a fresh session):",
            "",
        ]
        for login, link in zip(logins, messenger_links, strict=True):
            lines.append(f"  {login.name + ':':<18} {link}")
        lines += ["", "Or use the sessions below:", ""]
    for login in logins:
        session = login.grant.session
        lines += [
            f"  {login.name} ({login.role})",
            f"    user_id:      {session.user_id}",
            f"    access_token: {session.access_token}",
            f"    device_id:    {session.device_id}",
            f"    homeserver:   {login.grant.homeserver}",
            "",
        ]
    return "\n".join(lines)
