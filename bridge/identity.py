"""Matrix identities of portal users: an injective, reversible localpart template.

A localpart is built from ``(kind, practice_id, local_id)`` with a template such as
``pb_{kind}_{practice}_{id}``. Each field is escaped so that it only contains ``[a-z0-9-]``
plus ``=XX`` hex escapes: the separators of the template (``_``, ``.``, ``/``) can never
appear inside a field, so parsing a localpart back is unambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mautrix.types import UserID

Kind = Literal["staff", "client"]
KINDS: tuple[Kind, ...] = ("staff", "client")
_SAFE = re.compile(r"[a-z0-9-]")
_FIELD = r"([a-z0-9=-]+)"
_PLACEHOLDERS = ("{kind}", "{practice}", "{id}")


class TemplateError(ValueError):
    pass


def escape(value: str) -> str:
    out = []
    for ch in value:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"={b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)


def unescape(value: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "=":
            raw.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(value[i].encode())
            i += 1
    return raw.decode("utf-8")


@dataclass(frozen=True)
class PortalIdentity:
    kind: Kind
    practice_id: str
    local_id: str


class IdentityMapper:
    """Maps portal identities to Matrix user ids and back."""

    def __init__(self, template: str, domain: str, bot_localpart: str) -> None:
        validate_template(template)
        self.template = template
        self.domain = domain
        self.bot_localpart = bot_localpart
        self.bot_mxid = UserID(f"@{bot_localpart}:{domain}")
        pattern = re.escape(template)
        for name in ("kind", "practice", "id"):
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{_FIELD[1:-1]})")
        self._regex = re.compile(pattern)

    def localpart(self, kind: Kind, practice_id: str, local_id: str) -> str:
        return (
            self.template.replace("{kind}", kind)
            .replace("{practice}", escape(practice_id))
            .replace("{id}", escape(local_id))
        )

    def user_id(self, kind: Kind, practice_id: str, local_id: str) -> UserID:
        return UserID(f"@{self.localpart(kind, practice_id, local_id)}:{self.domain}")

    def parse(self, user_id: str) -> PortalIdentity | None:
        if not user_id.startswith("@") or ":" not in user_id:
            return None
        localpart, _, domain = user_id[1:].partition(":")
        if domain != self.domain:
            return None
        match = self._regex.fullmatch(localpart)
        if not match or match["kind"] not in KINDS:
            return None
        try:
            return PortalIdentity(
                match["kind"], unescape(match["practice"]), unescape(match["id"])
            )  # type: ignore[arg-type]
        except (ValueError, UnicodeDecodeError):
            return None

    def namespace_regex(self) -> str:
        """The exclusive user namespace for the registration (portal users, not the bot)."""
        pattern = re.escape(self.template)
        pattern = pattern.replace(re.escape("{kind}"), "(staff|client)")
        for name in ("practice", "id"):
            pattern = pattern.replace(re.escape("{" + name + "}"), "[a-z0-9=-]+")
        return f"@{pattern}:{re.escape(self.domain)}"


def validate_template(template: str) -> None:
    for placeholder in _PLACEHOLDERS:
        if template.count(placeholder) != 1:
            raise TemplateError(f"must contain {placeholder} exactly once")
    literal = template
    for placeholder in _PLACEHOLDERS:
        literal = literal.replace(placeholder, "\0")
    parts = literal.split("\0")
    for between in parts[1:-1]:
        if not between or not re.fullmatch(r"[._/]+", between):
            raise TemplateError("placeholders must be separated by '_', '.' or '/'")
    for part in (parts[0], parts[-1]):
        if not re.fullmatch(r"[a-z0-9._/-]*", part):
            raise TemplateError("may only contain lowercase letters, digits, '-', '_', '.', '/'")
