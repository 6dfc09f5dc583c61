"""Every refusal the API document names, with an example of it and what it means.

A route's error responses are made of these: those that come with its auth, path ids, query
and body (see document.py), and those the route table lists for it. Where the bridge has a
function that makes the error, the example is made by it; the others are the answers the
bridge gives, held to it by the API tests (``Contract.example``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from bridge.chats.service import MAX_MEMBERS, unknown_chat
from bridge.errors import (
    Codes,
    PracticeError,
    bad_json,
    forbidden,
    invalid_param,
    not_found,
    unknown_practice,
)
from bridge.export.service import not_allowed
from bridge.fields import check_chat_id, parse
from bridge.settings.model import Settings

from . import auth, http
from .bodies import ChatsQuery, PracticeWrite, StaffWrite
from .directory import not_the_owner
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


def _forbidden(code: Codes, message: str) -> PracticeError:
    return forbidden(message, code)


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
        _forbidden(Codes.UNKNOWN_USER, "This user is not part of any practice."),
        "The user is not a team member or client of any practice.",
    ),
    Refusal(
        "StaffRemoved",
        _forbidden(Codes.STAFF_REMOVED, "This team member was removed from the practice."),
        "The team member was removed (DELETE); put them again to restore access.",
    ),
    Refusal(
        "ClientRemoved",
        _forbidden(Codes.CLIENT_REMOVED, "This client was removed from the practice."),
        "The client was removed (DELETE); put them again to restore access.",
    ),
    Refusal(
        "ClientNotActivated",
        _forbidden(
            Codes.CLIENT_NOT_ACTIVATED, "This client has not activated their portal account."
        ),
        "The client has not activated their portal account (`activated: false`).",
    ),
    Refusal(
        "NoPortalAccess",
        _forbidden(Codes.NO_PORTAL_ACCESS, "This client has no portal access."),
        "The practice turned the client's portal access off (`portal_access: false`).",
    ),
    Refusal(
        "SubRecord",
        PracticeError(
            Codes.SUB_RECORD,
            "This client is a family member without an account of their own; their family "
            "primary uses the portal for them.",
            403,
            primary_id="c-1042",
        ),
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
        PracticeError(
            Codes.UNKNOWN_PLAN,
            "Unknown plan 'gold'; known plans: solo, plus, team.",
            400,
            param="plan",
        ),
        "`plan` names no plan of the bridge's config.",
    ),
    Refusal(
        "UnknownFamilyPrimary",
        PracticeError(
            Codes.UNKNOWN_FAMILY_PRIMARY,
            "The family primary is not a client of this practice.",
            400,
            param="family_primary_id",
        ),
        "`family_primary_id` names no active client of this practice.",
    ),
    Refusal(
        "FamilyPrimaryIsSubRecord",
        PracticeError(
            Codes.FAMILY_PRIMARY_IS_SUB_RECORD,
            "The family primary is itself a family member; name their primary instead.",
            400,
            param="family_primary_id",
            primary_id="c-1042",
        ),
        "`family_primary_id` names a family member; `primary_id` is their primary, the one to "
        "name instead.",
    ),
    Refusal(
        "FamilyPrimary",
        PracticeError(
            Codes.FAMILY_PRIMARY,
            "This client is the primary of a family and cannot become a family member itself.",
            409,
            param="family_primary_id",
        ),
        "The client is the primary of a family and so cannot become a family member.",
    ),
    Refusal(
        "StaffNotFound",
        not_found("This team member"),
        "No team member with this id in the practice.",
    ),
    Refusal("ClientNotFound", not_found("This client"), "No client with this id in the practice."),
    # Chats.
    Refusal(
        "UnknownChat",
        unknown_chat(),
        "No such chat, or the caller is not in it (the same answer).",
    ),
    Refusal(
        "UnknownClient",
        not_found("This client", Codes.UNKNOWN_CLIENT),
        "No active client with this id in the caller's practice (for a client: not themselves "
        "or one of their family members).",
    ),
    Refusal(
        "UnknownStaff",
        not_found("This team member", Codes.UNKNOWN_STAFF),
        "No active team member with this id in the caller's practice.",
    ),
    Refusal(
        "DirectNeedsClientId",
        invalid_param("client_id", "Staff start direct chats with a 'client_id'."),
        "Staff open direct chats with a client (`client_id`).",
    ),
    Refusal(
        "DirectNeedsStaffId",
        invalid_param("staff_id", "Clients start direct chats with a 'staff_id'."),
        "Clients open direct chats with a team member (`staff_id`).",
    ),
    Refusal(
        "DirectChatDisabled",
        _forbidden(
            Codes.DIRECT_CHAT_DISABLED,
            "Direct chats are turned off for this client; use a group chat.",
        ),
        "The client's direct chat access is off; a group chat still works.",
    ),
    Refusal(
        "DirectChatDisabledForClient",
        _forbidden(
            Codes.DIRECT_CHAT_DISABLED,
            "Direct messages to the practice are turned off for this client.",
        ),
        "The calling client's direct chat access (or their family member's) is off.",
    ),
    Refusal(
        "ChooseChat",
        PracticeError(
            Codes.CHOOSE_CHAT,
            "There is more than one chat with this person; choose one or start a new one.",
            409,
            candidates=[_candidate(_CHAT, "anna", ["tom"]), _candidate(_OTHER_CHAT, "tom", [])],
        ),
        "More than one 1:1 chat fits (the caller's own and shared ones); `candidates` lists "
        "them. Ask again with `chat_id` or `create_new: true`.",
    ),
    Refusal(
        "StaffOnly",
        _forbidden(Codes.STAFF_ONLY, "Only the practice's team may do this."),
        "Only team members create, convert, share and delete chats.",
    ),
    Refusal(
        "TooFewMembers",
        invalid_param("client_ids", "A group chat needs at least one other member."),
        "A group chat needs someone besides the caller.",
    ),
    Refusal(
        "TooManyMembers",
        invalid_param("client_ids", f"A chat has at most {MAX_MEMBERS} members."),
        f"A chat has at most {MAX_MEMBERS} members.",
    ),
    Refusal(
        "AlreadyGroup",
        PracticeError(Codes.NOT_DIRECT, "This chat is already a group chat.", 409),
        "Only a 1:1 chat can be converted.",
    ),
    Refusal(
        "NotDirect",
        PracticeError(
            Codes.NOT_DIRECT, "Only direct chats are shared; add people to a group.", 409
        ),
        "Only 1:1 chats are shared.",
    ),
    Refusal(
        "NotChatOwner",
        _forbidden(
            Codes.NOT_CHAT_OWNER,
            "Only the chat's practitioner or the practice owner may share it.",
        ),
        "Only the chat's practitioner or the practice owner shares it.",
    ),
    Refusal(
        "NotChatOwnerDelete",
        _forbidden(
            Codes.NOT_CHAT_OWNER,
            "Only the practice owner or the chat's practitioner may delete it.",
        ),
        "Only the practice owner or the chat's practitioner deletes it.",
    ),
    Refusal(
        "PlanForbidsSharing",
        _forbidden(
            Codes.PLAN_FORBIDS_SHARING,
            "The practice's plan (solo) does not include sharing direct chats.",
        ),
        "The practice's plan lacks `direct_chat_sharing`.",
    ),
    Refusal(
        "SharingDisabled",
        _forbidden(Codes.SHARING_DISABLED, "The practice has turned off sharing direct chats."),
        "The owner turned off `practice.allow_direct_chat_sharing`.",
    ),
    Refusal(
        "DeleteFailed",
        PracticeError(
            Codes.DELETE_FAILED,
            "The homeserver could not delete the chat; nothing was removed from the chat list. "
            "Try again.",
            502,
            reason="Failed to purge room",
        ),
        "Synapse reported that deleting the room failed; nothing was removed. `reason` is "
        "what it said.",
    ),
    Refusal(
        "DeletePending",
        PracticeError(
            Codes.DELETE_PENDING,
            "The homeserver is still deleting the chat; try again shortly.",
            504,
        ),
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
        _refused(
            Settings,
            {"autoresponder": {"periods": [{"day": "mon", "start": "9", "end": "17:00"}]}},
        ),
        "A setting has the wrong type or value; `param` is its path.",
    ),
    Refusal(
        "UnknownSetting",
        _refused(Settings, {"colour": "blue"}),
        "No such setting; `param` is its path.",
    ),
    Refusal(
        "AutoresponderWithoutMessage",
        invalid_param(
            "autoresponder.message", "An enabled autoresponder needs a message to send."
        ),
        "An enabled autoresponder needs a message.",
    ),
    Refusal(
        "AutoresponderStaffOnly",
        _forbidden(Codes.STAFF_ONLY, "Only the practice's team has an autoresponder."),
        "A client set `autoresponder`.",
    ),
    Refusal(
        "SettingsOwnerOnly",
        _forbidden(
            Codes.OWNER_ONLY, "Only the practice owner may change the practice's settings."
        ),
        "Someone other than the practice owner set `practice`.",
    ),
    Refusal(
        "DirectChatAccessStaffOnly",
        not_the_team(),
        "A client, or staff of another practice.",
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
]
REFUSALS = {refusal.name: refusal for refusal in _ALL}
