"""The settings object of GET|PUT /settings: defaults, merging and validation.

``PUT`` takes any part of the object and merges it; every value is checked and a problem names
its field (``autoresponder.periods[2].start``). Unknown fields are refused, not ignored, so a
typo never silently does nothing.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from bridge.errors import Codes, PracticeError, invalid_param

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_PERIODS = 5
MAX_AUTORESPONSE = 2000
MAX_CLIENT_LIMIT = 100_000
_TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")
# Control characters (line breaks and tabs are fine in a message) and lone surrogates.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

USER_DEFAULTS: dict[str, Any] = {
    "enter_key": "send",
    "open_recent_chat": True,
    "portal_alerts": True,
    "email_alerts": True,
    "autoresponder": {"enabled": False, "message": "", "periods": []},
}
PRACTICE_DEFAULTS: dict[str, Any] = {
    "disable_direct_chat_for_new_clients": False,
    "email_include_content": {"staff": False, "clients": False},
    "client_message_limit": None,
    "allow_direct_chat_sharing": True,
    "clients_may_export": False,
}
# Preferences every device of the user reads from account data.
DEVICE_PREFERENCES = ("enter_key", "open_recent_chat", "portal_alerts")


def user_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    return merge(USER_DEFAULTS, stored or {})


def practice_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    return merge(PRACTICE_DEFAULTS, stored or {})


def merge(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(defaults)
    for key, value in values.items():
        if isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = merge(result[key], value)
        elif key in result:
            result[key] = copy.deepcopy(value)
    return result


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid_param(path, f"'{path}' must be true or false.")
    return value


def _object(path: str, value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_param(path, f"'{path}' must be an object.")
    for key in value:
        if key not in allowed:
            raise invalid_param(f"{path}.{key}" if path else key, f"Unknown setting '{key}'.")
    return value


def validate_user_patch(patch: Any, *, is_staff: bool) -> dict[str, Any]:
    """Check the per-user part of a PUT /settings body; return it (without ``practice``)."""
    body = _object("", patch, (*USER_DEFAULTS, "practice"))
    out: dict[str, Any] = {}
    if "enter_key" in body:
        if body["enter_key"] not in ("send", "newline"):
            raise invalid_param("enter_key", "'enter_key' must be 'send' or 'newline'.")
        out["enter_key"] = body["enter_key"]
    for key in ("open_recent_chat", "portal_alerts", "email_alerts"):
        if key in body:
            out[key] = _bool(key, body[key])
    if "autoresponder" in body:
        if not is_staff:
            raise PracticeError(
                Codes.STAFF_ONLY,
                "Only the practice's team has an autoresponder.",
                403,
            )
        out["autoresponder"] = _autoresponder(body["autoresponder"])
    return out


def _autoresponder(value: Any) -> dict[str, Any]:
    body = _object("autoresponder", value, ("enabled", "message", "periods"))
    out: dict[str, Any] = {}
    if "enabled" in body:
        out["enabled"] = _bool("autoresponder.enabled", body["enabled"])
    if "message" in body:
        message = body["message"]
        if isinstance(message, str) and _CONTROL_RE.search(message):
            raise invalid_param(
                "autoresponder.message", "'autoresponder.message' contains control characters."
            )
        if not isinstance(message, str) or len(message) > MAX_AUTORESPONSE:
            raise invalid_param(
                "autoresponder.message",
                f"'autoresponder.message' must be text of at most {MAX_AUTORESPONSE} characters.",
            )
        out["message"] = message
    if "periods" in body:
        out["periods"] = _periods(body["periods"])
    return out


def _periods(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise invalid_param("autoresponder.periods", "'autoresponder.periods' must be a list.")
    if len(value) > MAX_PERIODS:
        raise invalid_param(
            "autoresponder.periods", f"At most {MAX_PERIODS} weekly periods may be set."
        )
    periods = []
    for i, item in enumerate(value):
        path = f"autoresponder.periods[{i}]"
        period = _object(path, item, ("day", "start", "end"))
        if period.get("day") not in DAYS:
            raise invalid_param(f"{path}.day", f"'{path}.day' must be one of {', '.join(DAYS)}.")
        for edge in ("start", "end"):
            if not isinstance(period.get(edge), str) or not _TIME_RE.fullmatch(period[edge]):
                raise invalid_param(f"{path}.{edge}", f"'{path}.{edge}' must be a time 'HH:MM'.")
        if period["start"] >= period["end"]:
            raise invalid_param(f"{path}.start", f"'{path}' must start before it ends.")
        periods.append({"day": period["day"], "start": period["start"], "end": period["end"]})
    return periods


def validate_practice_patch(value: Any) -> dict[str, Any]:
    body = _object("practice", value, tuple(PRACTICE_DEFAULTS))
    out: dict[str, Any] = {}
    for key in (
        "disable_direct_chat_for_new_clients",
        "allow_direct_chat_sharing",
        "clients_may_export",
    ):
        if key in body:
            out[key] = _bool(f"practice.{key}", body[key])
    if "email_include_content" in body:
        audiences = _object(
            "practice.email_include_content", body["email_include_content"], ("staff", "clients")
        )
        out["email_include_content"] = {
            k: _bool(f"practice.email_include_content.{k}", v) for k, v in audiences.items()
        }
    if "client_message_limit" in body:
        limit = body["client_message_limit"]
        if limit is not None and (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 1 <= limit <= MAX_CLIENT_LIMIT
        ):
            raise invalid_param(
                "practice.client_message_limit",
                f"'practice.client_message_limit' must be null or a whole number from 1 to "
                f"{MAX_CLIENT_LIMIT}.",
            )
        out["client_message_limit"] = limit
    return out


def check_autoresponder(settings: dict[str, Any]) -> None:
    """An enabled autoresponder needs a message."""
    auto = settings["autoresponder"]
    if auto["enabled"] and not auto["message"].strip():
        raise invalid_param(
            "autoresponder.message", "An enabled autoresponder needs a message to send."
        )
