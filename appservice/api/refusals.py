"""Every refusal the API document names: an example, made by the function that makes the error,
and what it means.

A route's error responses are made of these: those that come with its auth, path ids, query
and body (see document.py), and those the route table lists for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from appservice.rooms import delete_failed, delete_pending
from bridge.chats import refusals as chats
from bridge.directory import refusals as directory
from bridge.errors import PracticeError, bad_json, unknown_practice
from bridge.export.service import not_allowed
from bridge.fields import check_chat_id, parse
from bridge.health import Check
from bridge.settings.model import Settings, autoresponder_without_message
from bridge.settings.service import autoresponder_staff_only, practice_owner_only

from . import auth, http
from .bodies import ChatsQuery, PracticeWrite, StaffWrite
from .directory import not_the_owner
from .health import unhealthy
from .routing import unknown_parameter
from .settings import not_the_team

EXAMPLE_PRACTICE = "sunrise-wellness"
_CHAT = "!29rw64RM6bkXyjfunyXXzX8D2jl6XZLw7Nyf1DkQAhI"
_OTHER_CHAT = "!UrjWapACn28XWuCwxxidaRR7wfQy3O8rUD9trcC5Fi8"


@dataclass(frozen=True)
class Refusal:
    name: str
    error: PracticeError
    summary: str


def _refused(model: type[BaseModel], data: dict[str, object]) -> PracticeError:
    try:
        parse(model, data)
    except PracticeError as e:
        return e
    raise AssertionError(f"{model.__name__} accepts {data}")


def _invalid_chat_id() -> PracticeError:
    try:
        check_chat_id("chat_id", "abc123")
    except PracticeError as e:
        return e
    raise AssertionError("abc123 is no chat id")


def _candidate(chat_id: str, owner: str, shared: list[str]) -> dict[str, object]:
    return {
        "chat_id": chat_id,
        "kind": "direct",
        "name": None,
        "owner_staff_id": owner,
        "shared_with_staff_ids": shared,
        "subject_client_ids": ["maria"],
    }


_CANDIDATES = [_candidate(_CHAT, "anna", ["tom"]), _candidate(_OTHER_CHAT, "tom", [])]
_ALL = [
    # The request itself.
    Refusal("NotJson", bad_json(), "The body is missing, empty or not valid JSON."),
    Refusal("BadJson", http.not_an_object(), "The body is valid JSON but not a JSON object."),
    Refusal(
        "MissingParam",
        _refused(PracticeWrite, {}),
        "A required field or query parameter is missing (or null); `param` names it.",
    ),
    Refusal(
        "InvalidParam",
        _refused(StaffWrite, {"name": "Dr. Mina Lee", "email": "mina.lee", "role": "owner"}),
        "A field, path id or query parameter has the wrong type or form; `param` names it.",
    ),
    Refusal("InvalidChatId", _invalid_chat_id(), "The chat id in the path is not a room id."),
    Refusal(
        "InvalidFilter",
        _refused(ChatsQuery, {"filter": "starred"}),
        "`filter` or `include_hidden` has another value.",
    ),
    Refusal(
        "InvalidCursor",
        chats.bad_cursor(),
        "`from` is not the `next_batch` of an earlier page of this list (with the same "
        "`filter` and `include_hidden`).",
    ),
    Refusal(
        "UnknownParameter",
        unknown_parameter("filters"),
        "A query parameter the route does not take (a misspelt one would otherwise do nothing).",
    ),
    Refusal("TooLarge", http.too_large(), "The body is larger than 64 KiB."),
    # Who calls.
    Refusal("MissingToken", auth.missing_token(), "No `Authorization: Bearer` header."),
    Refusal(
        "UnknownToken",
        auth.unknown_token(),
        "The token is neither the shared secret nor a valid Matrix access token.",
    ),
    Refusal(
        "BackendOnly",
        auth.backend_only(),
        "A Matrix access token on a route only the portal backend may use (or a token of an "
        "account that is not a portal user, or acting for another user).",
    ),
    Refusal(
        "MissingUserId",
        auth.missing_user_id(),
        "The shared secret without `user_id` on a route that acts as a user.",
    ),
    Refusal(
        "InvalidUserId", auth.not_a_portal_user(), "`user_id` is not a portal user of this bridge."
    ),
    Refusal(
        "ForbiddenCaller",
        auth.acting_for_another(),
        "A Matrix token with `user_id` naming someone else (or a token of an account that is "
        "not a portal user).",
    ),
    Refusal(
        "UnknownUser",
        directory.unknown_user(),
        "The user is not a team member or client of any practice.",
    ),
    Refusal(
        "StaffRemoved",
        directory.staff_removed(),
        "The team member was removed (DELETE); put them again to restore access.",
    ),
    Refusal(
        "ClientRemoved",
        directory.client_removed(),
        "The client was removed (DELETE); put them again to restore access.",
    ),
    Refusal(
        "ClientNotActivated",
        directory.client_not_activated(),
        "The client has not activated their portal account (`activated: false`).",
    ),
    Refusal(
        "NoPortalAccess",
        directory.no_portal_access(),
        "The practice turned the client's portal access off (`portal_access: false`).",
    ),
    Refusal(
        "SubRecord",
        directory.sub_record("c-1042"),
        "The client is a family member without an account; `primary_id` names the family "
        "primary, whose session to mint instead.",
    ),
    Refusal(
        "OwnerOnly",
        not_the_owner(),
        "The caller is not the owner of an active practice (or a token of an account that is "
        "not a portal user, or acting for another user).",
    ),
    # The directory.
    Refusal(
        "UnknownPractice",
        unknown_practice(EXAMPLE_PRACTICE),
        "No practice with this id; `practice_id` repeats it.",
    ),
    Refusal(
        "UnknownPlan",
        directory.unknown_plan("gold", ["solo", "plus", "team"]),
        "`plan` names no plan of the bridge's config.",
    ),
    Refusal(
        "UnknownFamilyPrimary",
        directory.unknown_family_primary(),
        "`family_primary_id` names no active client of this practice.",
    ),
    Refusal(
        "FamilyPrimaryIsSubRecord",
        directory.family_primary_is_sub_record("c-1042"),
        "`family_primary_id` names a family member; `primary_id` is their primary, the one to "
        "name instead.",
    ),
    Refusal(
        "FamilyPrimary",
        directory.family_primary(),
        "The client is the primary of a family and so cannot become a family member.",
    ),
    Refusal(
        "StaffNotFound",
        directory.staff_not_found(),
        "No team member with this id in the practice.",
    ),
    Refusal(
        "ClientNotFound", directory.client_not_found(), "No client with this id in the practice."
    ),
    Refusal(
        "AppLoginStaffOnly",
        directory.app_login_staff_only(),
        "Clients never get a Matrix app password: they use the portal.",
    ),
    # Chats.
    Refusal(
        "UnknownChat",
        chats.unknown_chat(),
        "No such chat, or the caller is not in it (the same answer).",
    ),
    Refusal(
        "UnknownClient",
        chats.unknown_client(),
        "No active client with this id in the caller's practice (for a client: not themselves "
        "or one of their family members).",
    ),
    Refusal(
        "UnknownStaff",
        chats.unknown_staff(),
        "No active team member with this id in the caller's practice.",
    ),
    Refusal(
        "DirectNeedsClientId",
        chats.direct_needs_client(),
        "Staff open direct chats with a client (`client_id`).",
    ),
    Refusal(
        "DirectNeedsStaffId",
        chats.direct_needs_staff(),
        "Clients open direct chats with a team member (`staff_id`).",
    ),
    Refusal(
        "DirectChatDisabled",
        chats.direct_chat_disabled(),
        "The client's direct chat access is off; a group chat still works.",
    ),
    Refusal(
        "DirectChatDisabledForClient",
        chats.direct_chat_disabled_for_client(),
        "The calling client's direct chat access (or their family member's) is off.",
    ),
    Refusal(
        "ChooseChat",
        chats.choose_chat(_CANDIDATES),
        "More than one 1:1 chat fits (the caller's own and shared ones); `candidates` lists "
        "them. Ask again with `chat_id` or `create_new: true`.",
    ),
    Refusal(
        "StaffOnly",
        chats.staff_only(),
        "Only team members create, convert, share and delete chats.",
    ),
    Refusal(
        "TooFewMembers",
        chats.too_few_members(),
        "A group chat needs someone besides the caller.",
    ),
    Refusal(
        "TooManyMembers",
        chats.too_many_members(),
        f"A chat has at most {chats.MAX_MEMBERS} members.",
    ),
    Refusal("AlreadyGroup", chats.already_group(), "Only a 1:1 chat can be converted."),
    Refusal("NotDirect", chats.not_direct(), "Only 1:1 chats are shared."),
    Refusal(
        "NotChatOwner",
        chats.not_owner_to_share(),
        "Only the chat's practitioner or the practice owner shares it.",
    ),
    Refusal(
        "NotChatOwnerDelete",
        chats.not_owner_to_delete(),
        "Only the practice owner or the chat's practitioner deletes it.",
    ),
    Refusal(
        "PlanForbidsSharing",
        chats.plan_forbids_sharing("solo"),
        "The practice's plan lacks `direct_chat_sharing`.",
    ),
    Refusal(
        "SharingDisabled",
        chats.sharing_disabled(),
        "The owner turned off `practice.allow_direct_chat_sharing`.",
    ),
    Refusal(
        "DeleteFailed",
        delete_failed("Failed to purge room"),
        "Synapse reported that deleting the room failed; nothing was removed. `reason` is "
        "what it said.",
    ),
    Refusal(
        "DeletePending",
        delete_pending(),
        "Synapse has not finished deleting the room in time; nothing was removed yet. Try again.",
    ),
    Refusal(
        "ExportNotAllowed",
        not_allowed("The practice does not let clients export their chats."),
        "A client, and the practice does not let clients export (or the chat is a group chat).",
    ),
    # Settings.
    Refusal(
        "InvalidSetting",
        _refused(Settings, {"autoresponder": {"periods": [{"day": "mon", "start": "9"}]}}),
        "A setting has the wrong type or value; `param` is its path.",
    ),
    Refusal(
        "UnknownSetting",
        _refused(Settings, {"colour": "blue"}),
        "No such setting; `param` is its path.",
    ),
    Refusal(
        "AutoresponderWithoutMessage",
        autoresponder_without_message(),
        "An enabled autoresponder needs a message.",
    ),
    Refusal("AutoresponderStaffOnly", autoresponder_staff_only(), "A client set `autoresponder`."),
    Refusal(
        "SettingsOwnerOnly",
        practice_owner_only(),
        "Someone other than the practice owner set `practice`.",
    ),
    Refusal(
        "DirectChatAccessStaffOnly", not_the_team(), "A client, or staff of another practice."
    ),
    # The bridge or the homeserver failed.
    Refusal(
        "HomeserverFailed",
        http.homeserver_failed(),
        "The homeserver failed or could not be reached; the request may be retried.",
    ),
    Refusal(
        "StorageUnavailable",
        http.database_unavailable(),
        "The bridge's database cannot be used right now (unreachable, restarting, full or "
        "read-only); nothing was changed, the request may be retried.",
    ),
    Refusal(
        "Unhealthy",
        unhealthy(
            [
                Check("database", True, "ok"),
                Check("synapse", False, "unreachable (ClientConnectorError)"),
                Check("pipeline", True, "nothing pending"),
            ]
        ),
        "This bridge process cannot do its work right now: send its traffic elsewhere.",
    ),
]
REFUSALS = {refusal.name: refusal for refusal in _ALL}
