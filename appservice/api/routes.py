"""The provisioning API's route table: every operation, once.

Each entry says what the route takes (path ids, ``query``, ``body``: models of bodies.py), who
may call it (``auth``), what it answers (``answers``: shapes of answers.py) and the refusals of
its own (``errors``: names in refusals.py). :func:`routing.register` makes the aiohttp routes
from it, and document.py the OpenAPI document (``make openapi``). Examples of the exchanges are
in examples.json, under each route's operation id.
"""

from __future__ import annotations

from pydantic import BaseModel

from bridge.constants import BULK_DIRECT_MAX
from bridge.settings.model import Settings

from . import answers as a
from .applogin import AppLoginRoutes
from .bodies import (
    AppLoginQuery,
    AuditQuery,
    BulkDirectRequest,
    ChatsQuery,
    ClientWrite,
    DirectChatAccess,
    DirectChatRequest,
    ExportQuery,
    GroupChatRequest,
    PracticeWrite,
    SessionRequest,
    ShareRequest,
    StaffWrite,
)
from .chats import ChatRoutes
from .directory import DirectoryRoutes
from .export import ExportRoutes
from .health import HealthRoutes
from .routing import Answer, Auth, Handler, Route
from .server import MetaRoutes
from .settings import SettingsRoutes


def _flag(
    path: str,
    handler: Handler,
    shape: type[BaseModel],
    on: tuple[str, str],
    off: tuple[str, str],
    where: str,
) -> list[Route]:
    """A per-user flag of a chat: PUT sets it, DELETE clears it."""
    flag = next(iter(shape.model_fields.keys() - {"chat_id"}))
    return [
        Route(
            method,
            CHAT + path,
            operation_id,
            handler,
            Auth.USER,
            "chats",
            summary,
            {200: Answer(f"The chat's `{flag}` for the caller.", shape)},
            "For the caller only, in their Matrix account data: "
            + where
            + " Repeating it changes nothing.",
            errors=("UnknownChat",),
        )
        for method, (operation_id, summary) in (("PUT", on), ("DELETE", off))
    ]


def _upsert(what: str, shape: type[BaseModel]) -> dict[int, Answer]:
    """The answers of a PUT that creates or updates a record of the directory."""
    return {
        200: Answer(f"The {what} was updated (or restored).", shape),
        201: Answer(f"The {what} was created.", shape),
    }


def _removal(
    kind: str, operation_id: str, handler: Handler, what: str, shape: type[BaseModel]
) -> Route:
    """DELETE of a team member or a client: access ends, history stays."""
    return Route(
        "DELETE",
        f"{PRACTICE}/{kind}/{{{kind.removesuffix('s')}_id}}",
        operation_id,
        handler,
        Auth.BACKEND,
        "directory",
        f"Remove a {what}",
        {200: Answer(f"The {what} was removed; the record shows `active: false`.", shape)},
        f"Ends every Matrix session of the {what} at once and blocks new ones. Their chats and "
        "history stay with the practice; putting them again restores access.",
        errors=("UnknownPractice", "StaffNotFound" if kind == "staff" else "ClientNotFound"),
    )


PRACTICE = "/practices/{practice_id}"
CHAT = "/chats/{chat_id}"
_ACTOR_REFUSALS = ("StaffRemoved", "ClientRemoved", "ClientNotActivated", "NoPortalAccess")

ROUTES: list[Route] = [
    # -- the directory (the portal backend) ---------------------------------------------------
    Route(
        "PUT",
        PRACTICE,
        "putPractice",
        DirectoryRoutes.put_practice,
        Auth.BACKEND,
        "directory",
        "Create or update a practice",
        _upsert("practice", a.PracticeResult),
        "Creates the practice or replaces its name, plan and time zone. Settings a practice "
        "owner chose are kept. Every change is written to the audit log.",
        body=PracticeWrite,
        errors=("UnknownPlan",),
    ),
    Route(
        "PUT",
        PRACTICE + "/staff/{staff_id}",
        "putStaff",
        DirectoryRoutes.put_staff,
        Auth.BACKEND,
        "directory",
        "Create, update or restore a team member",
        _upsert("team member", a.StaffResult),
        "Creates the team member with a Matrix account, or updates them. Putting a removed "
        "team member restores their access, with the same account and chats.",
        body=StaffWrite,
        errors=("UnknownPractice",),
    ),
    _removal("staff", "deleteStaff", DirectoryRoutes.delete_staff, "team member", a.Staff),
    Route(
        "PUT",
        PRACTICE + "/clients/{client_id}",
        "putClient",
        DirectoryRoutes.put_client,
        Auth.BACKEND,
        "directory",
        "Create, update or restore a client",
        _upsert("client", a.ClientResult),
        "Creates or updates a client record. Only an activated client with portal access who "
        "is not a family member gets a Matrix account; when a client loses access (not "
        "activated, no portal access, becomes a family member) every session ends at once. A "
        "family member (`family_primary_id` set) never has an account: their family primary is "
        "reached instead. Putting a removed client restores them.",
        body=ClientWrite,
        errors=(
            "UnknownPractice",
            "UnknownFamilyPrimary",
            "FamilyPrimaryIsSubRecord",
            "FamilyPrimary",
        ),
    ),
    _removal("clients", "deleteClient", DirectoryRoutes.delete_client, "client", a.Client),
    Route(
        "PUT",
        PRACTICE + "/clients/{client_id}/direct-chat",
        "putDirectChatAccess",
        SettingsRoutes.put_direct_chat,
        Auth.CALLER,
        "settings",
        "Turn a client's 1:1 chats with the practice on or off",
        {200: Answer("The client record.", a.Client)},
        "The portal backend (with or without `user_id`) or a team member of the practice. Off: "
        "the client (or, for a family member, their primary) leaves the client's 1:1 chats and "
        "no longer sees them, cannot start one, and cannot send in one; the practice keeps "
        "them, and staff cannot start new ones either (group chats still work). On: the same "
        "chats come back with their history. New clients start with it off when the practice "
        "setting `disable_direct_chat_for_new_clients` is on. Audited "
        "(`client.direct_chat_access`).",
        body=DirectChatAccess,
        errors=(
            "ForbiddenCaller",
            "UnknownUser",
            "SubRecord",
            *_ACTOR_REFUSALS,
            "DirectChatAccessStaffOnly",
            "UnknownPractice",
            "ClientNotFound",
        ),
    ),
    Route(
        "POST",
        PRACTICE + "/sessions",
        "createSession",
        DirectoryRoutes.post_session,
        Auth.BACKEND,
        "sessions",
        "Mint a Matrix session for a portal user",
        {201: Answer("A new session.", a.SessionGrant)},
        "Logs in as the team member's or client's Matrix account and returns a new access "
        "token and device. The portal frontend uses it with the homeserver's client-server API "
        "and with the user routes of this API. Refused for removed users, clients who have not "
        "activated their account or have no portal access, and family members (the answer "
        "names the primary).",
        body=SessionRequest,
        errors=(
            "MissingParam",
            *_ACTOR_REFUSALS,
            "SubRecord",
            "UnknownPractice",
            "StaffNotFound",
            "ClientNotFound",
        ),
    ),
    Route(
        "POST",
        PRACTICE + "/staff/{staff_id}/matrix-login",
        "issueMatrixLogin",
        AppLoginRoutes.post_staff,
        Auth.BACKEND,
        "sessions",
        "Issue (or replace) a team member's Matrix app password",
        {201: Answer("The sign-in for a Matrix app, to show the person once.", a.AppLoginGrant)},
        "A fresh, long, random password for the team member's Matrix account, for Element and the "
        "other standard Matrix apps (the normal password login, with `username` and the "
        "`homeserver` URL). The bridge does not keep it: Synapse keeps only its hash, so it is in "
        "this answer (`Cache-Control: no-store`) and nowhere else. Calling it again replaces the "
        "password at once; the apps signed in with the old one stay signed in unless "
        "`logout=true`. Portal sessions are never touched. The person's private room with the "
        "practice bot is opened (if they had none) with the list of `!pb` commands. Audited "
        "(`app_login.issued`, `app_login.replaced`), never with the password. Clients never get "
        "one: a `staff_id` that names a client of the practice is refused "
        "(`APP_LOGIN_STAFF_ONLY`), and a client account holds no password "
        "(docs/security.md#matrix-app-sign-in).",
        query=AppLoginQuery,
        errors=("UnknownPractice", "StaffNotFound", "StaffRemoved", "AppLoginStaffOnly"),
    ),
    Route(
        "DELETE",
        PRACTICE + "/staff/{staff_id}/matrix-login",
        "endMatrixLogin",
        AppLoginRoutes.delete_staff,
        Auth.BACKEND,
        "sessions",
        "End a team member's Matrix app sign-in",
        {200: Answer("The password no longer works; the apps are signed out.", a.AppLoginEnded)},
        "The password stops working (Synapse gets one nobody is told) and every session of the "
        "person that the bridge did not mint for the portal ends at once: their Matrix apps "
        "are signed out, their portal sessions stay. Removing the team member does the same "
        "(and ends the portal's too). Repeating it changes nothing. Audited "
        "(`app_login.ended`).",
        errors=("UnknownPractice", "StaffNotFound"),
    ),
    Route(
        "GET",
        "/audit",
        "getAudit",
        DirectoryRoutes.get_audit,
        Auth.CALLER,
        "audit",
        "Read a practice's audit log",
        {200: Answer("Audit entries, newest first.", a.AuditPage)},
        "The portal backend names the practice with `practice_id`; a practice owner (with "
        "their own Matrix token, or the backend acting for them with `user_id`) reads their "
        "own practice's log and `practice_id` is ignored. Page back with `before` set to the "
        "smallest `id` of the last page.",
        query=AuditQuery,
        errors=("MissingParam", "OwnerOnly", "UnknownPractice"),
    ),
    # -- chats (a portal user) ----------------------------------------------------------------
    Route(
        "GET",
        "/contacts",
        "getContacts",
        ChatRoutes.get_contacts,
        Auth.USER,
        "chats",
        "The people the caller may message, with their chats",
        {200: Answer("The contacts.", a.Contacts)},
        "Team members, groups and clients as the caller may see them, each with the caller's "
        "chats with them. Staff see every active team member and client of the practice; a "
        "client sees the team members they may message (everyone while their direct chat "
        "access is on, otherwise those they share a chat with), their group chats, and "
        "themselves with their family members. `can_message` is false for a client who has "
        "not activated their account or has no portal access.",
    ),
    Route(
        "GET",
        "/chats",
        "listChats",
        ChatRoutes.get_chats,
        Auth.USER,
        "chats",
        "The caller's chats, pinned first, then the latest message first",
        {200: Answer("The chats, sorted.", a.ChatList)},
        "Every chat the caller is in (a client: also their family members' chats). Pinned, unread "
        "and hidden come from the caller's Matrix account data (tags `m.favourite`, "
        "`m.lowpriority` and `org.practicebridge.hidden`, room account data `m.marked_unread`), so"
        " a change made in any Matrix client shows here. A chat is unread when it is marked unread"
        " or someone else wrote after the caller last read it. A hidden chat is left out unless "
        "`include_hidden=true`, and comes back by itself when a new message arrives in it. A "
        "direct chat has no name of its own: `name` is the other side's. The list comes a page "
        "at a time (`limit`, 50 by default): while more follow, the answer has `next_batch`, "
        "to pass as `from` for the next page. The first page fixes the pass's chats and order: "
        "a chat that gets a message while the caller pages stays where it was in this pass "
        "(listed once) and is on top of the next one.",
        query=ChatsQuery,
        errors=("InvalidFilter", "InvalidCursor"),
    ),
    Route(
        "POST",
        "/chats/direct",
        "openDirectChat",
        ChatRoutes.post_direct,
        Auth.USER,
        "chats",
        "Open (or start) the caller's 1:1 chat with a client or a team member",
        {
            200: Answer("An existing chat was opened.", a.ChatCreated),
            201: Answer("A new chat was created.", a.ChatCreated),
        },
        "Staff name a client (`client_id`); a client names a team member (`staff_id`), and a "
        "family primary may add `client_id` of a family member to open the chat about them. "
        "When one 1:1 chat fits (the caller's own, or one shared with them) it is opened (200, "
        "and unhidden if the caller had hidden it); when none does, one is created (201), also "
        "when several requests race. When more than one fits, 409 `CHOOSE_CHAT` lists them: "
        "ask again with `chat_id` set to one of them, or with `create_new: true`. A chat about "
        "a family member puts the family primary's account in the room. Clients who have not "
        "activated their account or have no portal access cannot be messaged, and direct "
        "chats need the client's direct chat access (see `PUT .../direct-chat`).",
        body=DirectChatRequest,
        errors=(
            "DirectNeedsClientId",
            "DirectNeedsStaffId",
            "DirectChatDisabled",
            "DirectChatDisabledForClient",
            "UnknownClient",
            "UnknownStaff",
            "UnknownChat",
            "ChooseChat",
        ),
    ),
    Route(
        "POST",
        "/chats/direct/bulk",
        "openDirectChats",
        ChatRoutes.post_direct_bulk,
        Auth.USER,
        "chats",
        "Open (or start) the caller's 1:1 chats with many clients at once",
        {200: Answer("One result per client, each a chat or a refusal.", a.BulkOpened)},
        "Staff only: a practice's first contact with its clients, or an import. Each client "
        f"(1 to {BULK_DIRECT_MAX} in a request) is opened as `POST /chats/direct` with its "
        "`client_id` would: the one 1:1 chat that fits is opened, or one is created. The "
        "chats are made a few at a time. Each result has the `chat_id` and `created`, or the "
        "`errcode` and `error` that client met (`UNKNOWN_CLIENT`, `DIRECT_CHAT_DISABLED`, "
        "`CLIENT_NOT_ACTIVATED`, `NO_PORTAL_ACCESS`, `CHOOSE_CHAT` without its candidates, or "
        "`M_UNKNOWN` when the homeserver failed for that chat: ask again for it); the others "
        "are not held up by it. Asking again for the same clients opens the same chats.",
        body=BulkDirectRequest,
        errors=("StaffOnly",),
    ),
    Route(
        "POST",
        "/chats/group",
        "createGroupChat",
        ChatRoutes.post_group,
        Auth.USER,
        "chats",
        "Create a group chat",
        {201: Answer("The group chat was created.", a.ChatCreated)},
        "Staff only. The caller owns the new chat and is in it with the named clients and team "
        "members (at least one other, at most 100 in all). Everyone joins at once; a family "
        "member is reached through their primary's account. A group chat works also for "
        "clients whose direct chat access is off.",
        body=GroupChatRequest,
        errors=("TooFewMembers", "TooManyMembers", "StaffOnly", "UnknownClient", "UnknownStaff"),
    ),
    Route(
        "DELETE",
        CHAT,
        "deleteChat",
        ChatRoutes.delete_chat,
        Auth.USER,
        "chats",
        "Delete a chat for good",
        {200: Answer("The chat is gone.", a.Deleted)},
        "The practice owner or the chat's practitioner, in the chat. Synapse deletes and purges "
        "the room (admin API, `purge: true`); only once it reports the deletion complete does "
        "the chat leave every list. On failure nothing is removed (502 `DELETE_FAILED`, or 504 "
        "`DELETE_PENDING` while Synapse is still at it): try again. Audited (`chat.deleted`).",
        errors=("StaffOnly", "NotChatOwnerDelete", "UnknownChat", "DeleteFailed", "DeletePending"),
    ),
    Route(
        "POST",
        CHAT + "/convert",
        "convertChat",
        ChatRoutes.post_convert,
        Auth.USER,
        "chats",
        "Turn a 1:1 chat into a group chat",
        {200: Answer("The chat, now a group chat.", a.ChatSummary)},
        "Staff in the chat. The same room becomes a group chat with this name; the named "
        "clients and team members join (at most 100 in all) and see the history. The chat "
        "leaves its members' `m.direct`.",
        body=GroupChatRequest,
        errors=(
            "TooManyMembers",
            "StaffOnly",
            "UnknownChat",
            "UnknownClient",
            "UnknownStaff",
            "AlreadyGroup",
        ),
    ),
    Route(
        "POST",
        CHAT + "/share",
        "shareChat",
        ChatRoutes.post_share,
        Auth.USER,
        "chats",
        "Share a 1:1 chat with a team member",
        {200: Answer("The chat, shared.", a.ChatSummary)},
        "The chat's practitioner or the practice owner shares a client's 1:1 chat with another "
        "team member, who joins it and sees its history. Needs a plan with "
        "`direct_chat_sharing` (`practice.plans` in the config; by default `plus` and `team`) "
        "and the practice setting `allow_direct_chat_sharing`. Sharing again changes nothing. "
        "Audited (`chat.shared`).",
        body=ShareRequest,
        errors=(
            "StaffOnly",
            "NotChatOwner",
            "PlanForbidsSharing",
            "SharingDisabled",
            "UnknownChat",
            "UnknownStaff",
            "NotDirect",
        ),
    ),
    *_flag(
        "/pin",
        ChatRoutes.pin,
        a.PinFlag,
        ("pinChat", "Pin a chat"),
        ("unpinChat", "Unpin a chat"),
        "the tag `m.favourite`.",
    ),
    *_flag(
        "/hide",
        ChatRoutes.hide,
        a.HideFlag,
        ("hideChat", "Hide a chat"),
        ("unhideChat", "Show a hidden chat"),
        "the tags `m.lowpriority` (Matrix apps show the chat in *Low priority*) and "
        "`org.practicebridge.hidden` (with the time it was hidden); a new message in the chat "
        "shows it again in the portal.",
    ),
    *_flag(
        "/unread",
        ChatRoutes.mark_unread,
        a.UnreadFlag,
        ("markChatUnread", "Mark a chat unread"),
        ("markChatRead", "Mark a chat read"),
        "room account data `m.marked_unread` and `com.famedly.marked_unread`; marking it read "
        "also counts as reading it up to now.",
    ),
    Route(
        "GET",
        CHAT + "/export",
        "exportChat",
        ExportRoutes.get_export,
        Auth.USER,
        "chats",
        "Export a chat's history as a spreadsheet",
        {
            200: Answer(
                "The file, as an attachment named after the chat and the date "
                "(`Content-Disposition` with a UTF-8 `filename*`).",
                files=(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "text/csv",
                ),
            )
        },
        "The chat's whole history (or the days `from`..`to`, both included, in the practice's "
        "time zone) as a download: xlsx (a `Messages` sheet with one row per message and a "
        "`Chat` sheet with the chat's practice, name, kind, members and who exported it when) "
        "or csv (the message rows, UTF-8 with a byte order mark). Rows are in time order: time "
        "in the practice's time zone, sender, role (`owner`, `practitioner`, `team member`, "
        "`client`, `family member` with `On behalf of` naming the family member's record, "
        "`practice bot`), type (`text`, `notice`, `image`, `file`, `voice note`, "
        "`deleted`...), text (the latest edit; empty for a deleted message), attachment name, "
        "size and download link (authenticated media: open it with a Matrix session), the "
        "message replied to, reactions with counts, when it was edited and deleted, whether it "
        "is an automatic reply, and the event id. Cells that a spreadsheet would evaluate "
        "(starting with `=`, `+`, `-`, `@`) start with an apostrophe. The file is streamed; a "
        "failure after it started cuts the download short (the chunked body never ends), so a "
        "partial file is never mistaken for a whole one. May export: staff members of the "
        "chat and the practice owner; a client their own direct chats when the practice setting "
        "`clients_may_export` is on. Every export is in the audit log (`chat.exported`).",
        query=ExportQuery,
        errors=("ExportNotAllowed", "UnknownChat"),
    ),
    # -- settings -----------------------------------------------------------------------------
    Route(
        "GET",
        "/settings",
        "getSettings",
        SettingsRoutes.get_settings,
        Auth.USER,
        "settings",
        "The caller's messaging settings and the practice's",
        {200: Answer("The settings.", a.SettingsAnswer)},
        "The caller's preferences (defaults until changed), `autoresponder` for staff only, "
        "the practice's settings (`practice`, read-only but for the owner), and whether a "
        "change of the practice's rules has reached every chat yet (`practice_applied`, "
        "`practice_pending_chats`).",
    ),
    Route(
        "PUT",
        "/settings",
        "putSettings",
        SettingsRoutes.put_settings,
        Auth.USER,
        "settings",
        "Change some of the caller's settings (and, for the owner, the practice's)",
        {200: Answer("All settings, after the change.", a.SettingsAnswer)},
        "Takes any part of the settings object and merges it: fields left out keep their "
        "values; `autoresponder.periods` is replaced as a whole. Every value is checked and a "
        "refusal names the field in `param` (`autoresponder.periods[1].start`); unknown fields "
        "are refused, so a typo never silently does nothing; nothing is stored unless all of "
        "it is valid. `enter_key`, `open_recent_chat` and `portal_alerts` are also written to "
        "the caller's account data `org.practicebridge.preferences` for every device. Only "
        "staff have an autoresponder (an enabled one needs a message; no periods means always "
        "on, at most five weekly periods in the practice's time zone, `24:00` ends a day). "
        "Only the owner may set `practice`; a change of `client_message_limit` reaches every "
        "chat's policy state in the background (`practice_applied` turns true once it has). "
        "Audited (`practice.settings`). Answers with all settings, as `GET` does.",
        body=Settings,
        errors=(
            "InvalidSetting",
            "UnknownSetting",
            "AutoresponderWithoutMessage",
            "AutoresponderStaffOnly",
            "SettingsOwnerOnly",
        ),
    ),
    # -- about the API ------------------------------------------------------------------------
    Route(
        "GET",
        "/openapi.json",
        "getOpenApi",
        MetaRoutes.get_openapi,
        Auth.NONE,
        "meta",
        "This document",
        {200: Answer("The OpenAPI document.", a.Document)},
        "The OpenAPI document of this API, with `servers` set to the configured prefix. No "
        "authentication.",
    ),
    Route(
        "GET",
        "/health",
        "getHealth",
        HealthRoutes.get_health,
        Auth.NONE,
        "meta",
        "Whether this bridge process can serve (for load balancers)",
        {200: Answer("Every check passes.", a.Health)},
        "No authentication; cheap to call often (the checks' results are kept for two "
        "seconds). Healthy when the bridge's database answers, Synapse's client API answers, "
        "and the event pipeline runs with no stored event waiting longer than five minutes. "
        "Any failing check makes it `503 ORG.PRACTICEBRIDGE.UNHEALTHY` with every check and "
        "the reason of each failing one (docs/admin.md#health).",
        errors=("Unhealthy",),
    ),
]
