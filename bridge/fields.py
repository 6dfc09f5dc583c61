"""Checked values for the pydantic models at the edges (request bodies, queries, settings).

Each type below checks a value the way a client is told about it (one sentence per problem,
``{path}`` standing for the field's path) and describes itself to the API document as JSON
Schema. :func:`parse` validates a model and turns pydantic's first error into the refusal
callers know: ``M_MISSING_PARAM`` for a missing field, ``M_INVALID_PARAM`` otherwise, ``param``
naming the field by its path (``autoresponder.periods[2].start``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic_core import PydanticCustomError, core_schema

from bridge.constants import ID_PATTERN
from bridge.errors import PracticeError, invalid_param, missing_param

M = TypeVar("M", bound=BaseModel)

_CONTROL = r"\u0000-\u001f\u007f-\u009f\u2028\u2029"
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK_RE = re.compile(r"[\t\n\r\u2028\u2029]")
_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+")
_INT_RE = re.compile(r"-?[0-9]{1,19}")
CHAT_ID_PATTERN = r"![A-Za-z0-9._~:+/=-]{1,254}"
# Text on one line, with at least one character that is not a space.
_LINE_PATTERN = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"
_NO_CONTROL = f"[^@\\s{_CONTROL}]+"


def refuse(sentence: str, at: str | None = None) -> PydanticCustomError:
    """The value at hand is refused with this sentence (``{path}``: the field's path); ``at``
    names a field within it as ``param`` (a rule between the fields of an object)."""
    return PydanticCustomError("refused", sentence, {"at": at} if at else None)


@dataclass(frozen=True, eq=False)
class Checked:
    """Annotation metadata: ``check`` returns the value or raises :func:`refuse`; ``schema`` is
    what the document says of it."""

    check: Callable[[Any], Any]
    schema: Mapping[str, Any] = field(default_factory=dict)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(self.schema)


def _text(value: Any, max_len: int, single_line: bool) -> str:
    if not isinstance(value, str):
        raise refuse("'{path}' must be a string.")
    if len(value) > max_len:
        raise refuse(f"'{{path}}' is longer than {max_len} characters.")
    if _CONTROL_RE.search(value) or (single_line and _LINE_BREAK_RE.search(value)):
        raise refuse("'{path}' contains control characters.")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise refuse("'{path}' is not valid Unicode text.") from None
    if not value.strip():
        raise refuse("'{path}' must not be empty.")
    return value


def text(max_len: int) -> Checked:
    """Text on one line, not blank, without control characters."""
    return Checked(
        lambda v: _text(v, max_len, True),
        {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": _LINE_PATTERN},
    )


def _email(value: Any) -> str:
    value = _text(value, 254, True)
    if not _EMAIL_RE.fullmatch(value):
        raise refuse("'{path}' must be an email address.")
    return value


def _timezone(value: Any) -> str:
    value = _text(value, 64, True)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise refuse("'{path}' must be an IANA time zone such as 'Europe/Berlin'.") from None
    return value


def pattern(regex: str, sentence: str, schema: Mapping[str, Any]) -> Checked:
    """A string that matches ``regex`` whole."""
    compiled = re.compile(regex)

    def check(value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise refuse(sentence)
        return value

    whole = f"(?:{regex})" if "|" in regex else regex
    return Checked(check, {"type": "string", "pattern": f"^{whole}$", **schema})


def choice(*values: str, sentence: str | None = None) -> Checked:
    """One of ``values``; by default refused with "must be one of a, b, c"."""
    said = sentence or f"'{{path}}' must be one of {', '.join(values)}."

    def check(value: Any) -> str:
        if value not in values:
            raise refuse(said)
        return str(value)

    return Checked(check, {"type": "string", "enum": list(values)})


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise refuse("'{path}' must be true or false.")
    return value


def check_ids(value: Any) -> list[str]:
    """A list of portal ids."""
    if not isinstance(value, list):
        raise refuse("'{path}' must be a list of ids.")
    for item in value:
        _ID.check(item)
    return value


def integer(low: int, high: int) -> Checked:
    """A query parameter's plain decimal integer from ``low`` to ``high``."""

    def check(value: Any) -> int:
        if not isinstance(value, str) or not _INT_RE.fullmatch(value):
            raise refuse("'{path}' must be an integer.")
        number = int(value)
        if not low <= number <= high:
            raise refuse(f"'{{path}}' must be between {low} and {high}.")
        return number

    return Checked(check, {"type": "integer", "minimum": low, "maximum": high})


_ID_SENTENCE = "'{path}' must be 1-64 letters, digits, '.', '_' or '-'."
_ID = pattern(ID_PATTERN, _ID_SENTENCE, {"minLength": 1, "maxLength": 64})
_CHAT_ID_SENTENCE = "'{path}' must be a chat id such as '!abc123'."

Id = Annotated[str, _ID]
"""A portal id: 1-64 ASCII letters, digits, '.', '_' or '-'."""
IDS_SCHEMA: Mapping[str, Any] = {"type": "array", "items": _ID.schema}
Ids = Annotated[list[str], Checked(check_ids, IDS_SCHEMA)]
ChatId = Annotated[
    str, pattern(CHAT_ID_PATTERN, _CHAT_ID_SENTENCE, {"minLength": 2, "maxLength": 255})
]
"""A chat: its Matrix room id (room version 12: '!' and 43 URL-safe base64 characters)."""
Name = Annotated[str, text(256)]
Email = Annotated[
    str,
    Checked(
        _email,
        {
            "type": "string",
            "minLength": 5,
            "maxLength": 254,
            "pattern": f"^{_NO_CONTROL}@{_NO_CONTROL}\\.{_NO_CONTROL}$",
        },
    ),
]
Timezone = Annotated[str, Checked(_timezone, {**text(64).schema, "examples": ["Europe/Berlin"]})]
Flag = Annotated[bool, Checked(_flag, {"type": "boolean"})]


def check_id(name: str, value: Any) -> str:
    """A portal id outside a model (a path parameter), refused as a field would be."""
    try:
        return str(_ID.check(value))
    except PydanticCustomError as e:
        raise invalid_param(name, e.message().replace("{path}", name)) from None


def check_chat_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(CHAT_ID_PATTERN, value):
        raise invalid_param(name, _CHAT_ID_SENTENCE.replace("{path}", name))
    return value


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` as ``model``, or the first problem as a :class:`PracticeError`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # An unknown field is named first, as a typo is the likeliest cause of the rest.
        first = min(e.errors(include_url=False), key=lambda err: err["type"] != "extra_forbidden")
        raise refusal(first) from None


def refusal(error: Mapping[str, Any]) -> PracticeError:
    loc: tuple[str | int, ...] = error["loc"]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    at = (error.get("ctx") or {}).get("at")
    param = f"{path}.{at}" if at and path else at or path
    kind = error["type"]
    if kind == "missing":
        return missing_param(param)
    if kind == "refused":
        return invalid_param(param, error["msg"].replace("{path}", path))
    if kind == "extra_forbidden":
        return invalid_param(param, f"Unknown setting '{loc[-1]}'.")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return invalid_param(param, f"'{path}' must be an object.")
    return invalid_param(param, f"'{path}' is not valid.")
