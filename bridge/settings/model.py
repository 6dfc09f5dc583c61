"""The settings object of GET|PUT /settings: one model for its defaults, its checks, merging a
``PUT`` into what is stored, and the API document.

``PUT`` takes any part of the object (the model's fields all have defaults; what was sent is
what is set), checked as it comes: a problem names its field by its path
(``autoresponder.periods[2].start``), and an unknown field is refused, not ignored, so a typo
never silently does nothing. The part is then merged into the stored settings; an enabled
autoresponder needs a message, wherever it comes from.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bridge.errors import PracticeError, invalid_param
from bridge.fields import Checked, Flag, choice, pattern, refuse

log = logging.getLogger("practice.settings")
S = TypeVar("S", bound="_Settings")

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_PERIODS = 5
MAX_AUTORESPONSE = 2000
MAX_CLIENT_LIMIT = 100_000
# Preferences every device of the user reads from account data.
DEVICE_PREFERENCES = ("enter_key", "open_recent_chat", "portal_alerts")
# Control characters (line breaks and tabs are fine in a message) and lone surrogates.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Time = Annotated[
    str,
    pattern(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00", "'{path}' must be a time 'HH:MM'.", {}),
]


def _message(value: Any) -> str:
    if isinstance(value, str) and _CONTROL_RE.search(value):
        raise refuse("'{path}' contains control characters.")
    if not isinstance(value, str) or len(value) > MAX_AUTORESPONSE:
        raise refuse(f"'{{path}}' must be text of at most {MAX_AUTORESPONSE} characters.")
    return value


def _periods(value: Any) -> Any:
    if not isinstance(value, list):
        raise refuse("'{path}' must be a list.")
    if len(value) > MAX_PERIODS:
        raise refuse(f"At most {MAX_PERIODS} weekly periods may be set.")
    return value


def _limit(value: Any) -> int | None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CLIENT_LIMIT
    ):
        raise refuse(f"'{{path}}' must be null or a whole number from 1 to {MAX_CLIENT_LIMIT}.")
    return value


class _Settings(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        # In an answer every field is there; in a PUT any of them may be.
        json_schema_serialization_defaults_required=True,
    )

    @classmethod
    def read(cls: type[S], stored: dict[str, Any] | None) -> S:
        """Stored settings, with defaults for what was never set."""
        try:
            return cls.model_validate(stored or {})
        except ValueError:
            log.warning("Stored %s do not read; using the defaults", cls.__name__)
            return cls()


class Period(_Settings):
    """A weekly period in the practice's time zone; `start` before `end`."""

    day: Annotated[Weekday, choice(*DAYS)]
    start: Time
    end: Time

    @model_validator(mode="before")
    @classmethod
    def _complete(cls, data: Any) -> Any:
        """A part left out is a wrong one (``'...day' must be one of ...``)."""
        return (
            {"day": None, "start": None, "end": None, **data} if isinstance(data, dict) else data
        )

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.start >= self.end:
            raise refuse("'{path}' must start before it ends.", at="start")
        return self


class Autoresponder(_Settings):
    """Answers a client's message in a 1:1 chat with the practitioner, at most once per 30
    minutes per client, within the periods (none: always)."""

    enabled: Flag = False
    """An enabled one needs a message."""
    message: Annotated[
        str, Checked(_message, {"type": "string", "maxLength": MAX_AUTORESPONSE})
    ] = ""
    periods: Annotated[list[Period], BeforeValidator(_periods), Field(max_length=MAX_PERIODS)] = (
        Field(default_factory=list)
    )


class UserSettings(_Settings):
    """A user's messaging preferences."""

    enter_key: Annotated[
        Literal["send", "newline"],
        choice("send", "newline", sentence="'{path}' must be 'send' or 'newline'."),
    ] = "send"
    """What the Enter key does in the portal's composer."""
    open_recent_chat: Flag = True
    """Open the most recent chat on arrival."""
    portal_alerts: Flag = True
    """Alerts in the portal."""
    email_alerts: Flag = True
    """Emails about unread messages."""
    autoresponder: Autoresponder = Field(default_factory=Autoresponder)
    """Staff only."""


class EmailContent(_Settings):
    """Whether notification emails to this audience include the message (the email then says
    that email is not secure)."""

    staff: Flag = False
    clients: Flag = False


class PracticeSettings(_Settings):
    """The practice's rules; only its owner changes them."""

    disable_direct_chat_for_new_clients: Flag = False
    """New clients start with direct chat access off."""
    email_include_content: EmailContent = Field(default_factory=EmailContent)
    client_message_limit: Annotated[
        int | None,
        Checked(
            _limit,
            {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": MAX_CLIENT_LIMIT},
                    {"type": "null"},
                ]
            },
        ),
    ] = None
    """The longest message a client may send, in characters (code points); null: no limit."""
    allow_direct_chat_sharing: Flag = True
    """Whether 1:1 chats may be shared (the plan must allow it too)."""
    clients_may_export: Flag = False
    """Whether clients may export their own 1:1 chats."""


class Settings(UserSettings):
    """Any part of the settings (unknown fields are refused): the caller's preferences and,
    for the practice owner, the practice's rules."""

    practice: PracticeSettings = Field(default_factory=PracticeSettings)


def merged(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` over ``stored``: objects merge field by field, anything else replaces."""
    result = dict(stored)
    for key, value in patch.items():
        before = result.get(key)
        if isinstance(before, dict) and isinstance(value, dict):
            value = merged(before, value)
        result[key] = value
    return result


def apply(user: UserSettings, practice: PracticeSettings, patch: Settings) -> Settings:
    """The settings after a ``PUT`` of ``patch``; PracticeError if refused."""
    stored = {**user.model_dump(), "practice": practice.model_dump()}
    after = Settings.model_validate(merged(stored, patch.model_dump(exclude_unset=True)))
    if after.autoresponder.enabled and not after.autoresponder.message.strip():
        raise autoresponder_without_message()
    return after


def autoresponder_without_message() -> PracticeError:
    return invalid_param(
        "autoresponder.message", "An enabled autoresponder needs a message to send."
    )


def user_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    return UserSettings.read(stored).model_dump()


def practice_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    return PracticeSettings.read(stored).model_dump()
