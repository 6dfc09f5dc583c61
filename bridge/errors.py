"""Errors as types with a code, rendered the same way by the API and the Synapse module.

Every error a caller can provoke is a :class:`PracticeError`: an errcode from :class:`Codes`
(Matrix ``M_*`` where one fits, ``ORG.PRACTICEBRIDGE.*`` otherwise), a sentence a client can
show, an HTTP status and any extra fields (``max_length``, ``candidates``...).

Standard library only: code that runs inside Synapse may import this module.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

PREFIX = "ORG.PRACTICEBRIDGE."


class Codes(StrEnum):
    """Every errcode the bridge, its API and its Synapse modules answer with."""

    # Matrix's own.
    BAD_JSON = "M_BAD_JSON"
    FORBIDDEN = "M_FORBIDDEN"
    INVALID_PARAM = "M_INVALID_PARAM"
    MISSING_PARAM = "M_MISSING_PARAM"
    MISSING_TOKEN = "M_MISSING_TOKEN"  # noqa: S105 (an errcode)
    NOT_FOUND = "M_NOT_FOUND"
    NOT_JSON = "M_NOT_JSON"
    TOO_LARGE = "M_TOO_LARGE"
    UNKNOWN = "M_UNKNOWN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"  # noqa: S105 (an errcode)
    UNRECOGNIZED = "M_UNRECOGNIZED"
    # The bridge's: the directory and sessions.
    UNKNOWN_PRACTICE = PREFIX + "UNKNOWN_PRACTICE"
    UNKNOWN_PLAN = PREFIX + "UNKNOWN_PLAN"
    UNKNOWN_FAMILY_PRIMARY = PREFIX + "UNKNOWN_FAMILY_PRIMARY"
    FAMILY_PRIMARY_IS_SUB_RECORD = PREFIX + "FAMILY_PRIMARY_IS_SUB_RECORD"
    FAMILY_PRIMARY = PREFIX + "FAMILY_PRIMARY"
    STAFF_REMOVED = PREFIX + "STAFF_REMOVED"
    CLIENT_REMOVED = PREFIX + "CLIENT_REMOVED"
    CLIENT_NOT_ACTIVATED = PREFIX + "CLIENT_NOT_ACTIVATED"
    NO_PORTAL_ACCESS = PREFIX + "NO_PORTAL_ACCESS"
    SUB_RECORD = PREFIX + "SUB_RECORD"
    UNKNOWN_USER = PREFIX + "UNKNOWN_USER"
    # Chats.
    UNKNOWN_CHAT = PREFIX + "UNKNOWN_CHAT"
    UNKNOWN_CLIENT = PREFIX + "UNKNOWN_CLIENT"
    UNKNOWN_STAFF = PREFIX + "UNKNOWN_STAFF"
    STAFF_ONLY = PREFIX + "STAFF_ONLY"
    OWNER_ONLY = PREFIX + "OWNER_ONLY"
    NOT_CHAT_OWNER = PREFIX + "NOT_CHAT_OWNER"
    PLAN_FORBIDS_SHARING = PREFIX + "PLAN_FORBIDS_SHARING"
    SHARING_DISABLED = PREFIX + "SHARING_DISABLED"
    DIRECT_CHAT_DISABLED = PREFIX + "DIRECT_CHAT_DISABLED"
    CHOOSE_CHAT = PREFIX + "CHOOSE_CHAT"
    NOT_DIRECT = PREFIX + "NOT_DIRECT"
    NOT_GROUP = PREFIX + "NOT_GROUP"
    DELETE_FAILED = PREFIX + "DELETE_FAILED"
    DELETE_PENDING = PREFIX + "DELETE_PENDING"
    EXPORT_NOT_ALLOWED = PREFIX + "EXPORT_NOT_ALLOWED"
    # What a client sends through the homeserver (the Synapse modules and the bridge after
    # the fact).
    MESSAGE_TOO_LONG = PREFIX + "MESSAGE_TOO_LONG"
    ATTACHMENT_TOO_LARGE = PREFIX + "ATTACHMENT_TOO_LARGE"
    ATTACHMENT_TYPE_BLOCKED = PREFIX + "ATTACHMENT_TYPE_BLOCKED"
    # Bot commands.
    BAD_COMMAND = PREFIX + "BAD_COMMAND"
    NO_MATCH = PREFIX + "NOT_FOUND"
    AMBIGUOUS = PREFIX + "AMBIGUOUS"
    # The bridge itself.
    STORAGE_UNAVAILABLE = PREFIX + "STORAGE_UNAVAILABLE"
    UNHEALTHY = PREFIX + "UNHEALTHY"


class PracticeError(Exception):
    def __init__(self, errcode: str, message: str, http_status: int = 400, **fields: Any) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.message = message
        self.http_status = http_status
        self.fields = fields

    def to_json(self) -> dict[str, Any]:
        return {"errcode": str(self.errcode), "error": self.message, **self.fields}


def bad_json(message: str = "The request body is not valid JSON.") -> PracticeError:
    return PracticeError(Codes.NOT_JSON, message, 400)


def invalid_param(name: str, message: str) -> PracticeError:
    return PracticeError(Codes.INVALID_PARAM, message, 400, param=name)


def missing_param(name: str) -> PracticeError:
    return PracticeError(Codes.MISSING_PARAM, f"'{name}' is required.", 400, param=name)


def not_found(what: str, errcode: str = Codes.NOT_FOUND) -> PracticeError:
    return PracticeError(errcode, f"{what} was not found.", 404)


def forbidden(message: str, errcode: str = Codes.FORBIDDEN) -> PracticeError:
    return PracticeError(errcode, message, 403)


def unknown_practice(practice_id: str) -> PracticeError:
    return PracticeError(
        Codes.UNKNOWN_PRACTICE, "This practice does not exist.", 404, practice_id=practice_id
    )
