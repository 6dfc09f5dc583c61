"""Errors as types with a code, rendered the same way by the API and the Synapse module.

Every error a caller can provoke is a :class:`PracticeError`: an errcode from :class:`Codes`
(Matrix ``M_*`` where one fits, ``ORG.PRACTICEBRIDGE.*`` otherwise), a sentence a client can
show, an HTTP status and any extra fields (``max_length``, ``candidates``...). The errcodes
live with the Synapse modules (``practice_bridge_synapse.errors``), which answer with the same.
"""

from __future__ import annotations

from typing import Any

from practice_bridge_synapse.errors import PREFIX as PREFIX
from practice_bridge_synapse.errors import Codes as Codes


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
