"""What the chat service refuses, each with the sentence the caller sees."""

from __future__ import annotations

from typing import Any

from bridge.errors import Codes, PracticeError, forbidden, invalid_param, not_found

MAX_MEMBERS = 100


def unknown_chat() -> PracticeError:
    # The same answer whether the chat does not exist or belongs to someone else.
    return not_found("This chat", Codes.UNKNOWN_CHAT)


def unknown_client() -> PracticeError:
    return not_found("This client", Codes.UNKNOWN_CLIENT)


def unknown_staff() -> PracticeError:
    return not_found("This team member", Codes.UNKNOWN_STAFF)


def staff_only() -> PracticeError:
    return forbidden("Only the practice's team may do this.", Codes.STAFF_ONLY)


def bad_cursor() -> PracticeError:
    return invalid_param("from", "'from' must be the next_batch of an earlier page of this list.")


def direct_needs_client() -> PracticeError:
    return invalid_param("client_id", "Staff start direct chats with a 'client_id'.")


def direct_needs_staff() -> PracticeError:
    return invalid_param("staff_id", "Clients start direct chats with a 'staff_id'.")


def direct_chat_disabled() -> PracticeError:
    return forbidden(
        "Direct chats are turned off for this client; use a group chat.",
        Codes.DIRECT_CHAT_DISABLED,
    )


def direct_chat_disabled_for_client() -> PracticeError:
    return forbidden(
        "Direct messages to the practice are turned off for this client.",
        Codes.DIRECT_CHAT_DISABLED,
    )


def choose_chat(candidates: list[dict[str, Any]]) -> PracticeError:
    return PracticeError(
        Codes.CHOOSE_CHAT,
        "There is more than one chat with this person; choose one or start a new one.",
        409,
        candidates=candidates,
    )


def too_few_members() -> PracticeError:
    return invalid_param("client_ids", "A group chat needs at least one other member.")


def too_many_members() -> PracticeError:
    return invalid_param("client_ids", f"A chat has at most {MAX_MEMBERS} members.")


def already_group() -> PracticeError:
    return PracticeError(Codes.NOT_DIRECT, "This chat is already a group chat.", 409)


def not_group() -> PracticeError:
    return PracticeError(
        Codes.NOT_GROUP, "Only group chats take new members; convert it first.", 409
    )


def not_direct() -> PracticeError:
    return PracticeError(
        Codes.NOT_DIRECT, "Only direct chats are shared; add people to a group.", 409
    )


def not_owner_to_share() -> PracticeError:
    return forbidden(
        "Only the chat's practitioner or the practice owner may share it.", Codes.NOT_CHAT_OWNER
    )


def not_owner_to_delete() -> PracticeError:
    return forbidden(
        "Only the practice owner or the chat's practitioner may delete it.", Codes.NOT_CHAT_OWNER
    )


def plan_forbids_sharing(plan: str) -> PracticeError:
    return forbidden(
        f"The practice's plan ({plan}) does not include sharing direct chats.",
        Codes.PLAN_FORBIDS_SHARING,
    )


def sharing_disabled() -> PracticeError:
    return forbidden("The practice has turned off sharing direct chats.", Codes.SHARING_DISABLED)
