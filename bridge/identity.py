"""Matrix identities of portal users: an injective, reversible localpart template.

A localpart is built from ``(kind, practice_id, local_id)`` with a template such as
``pb_{kind}_{practice}_{id}``. Each id becomes a *field* over ``[a-z0-9=-]`` only; the
separators a template may use between placeholders (``_``, ``.``, ``/``) never occur inside a
field, so a localpart parses back unambiguously. A field has one of two forms:

- readable: ``[a-z0-9-]`` kept as is, every other character as ``=xx`` per UTF-8 byte
  (``Client_7`` -> ``=6client=5f7``);
- packed, only for portal ids (``[A-Za-z0-9._-]``) whose readable form would be longer than
  :data:`FIELD_MAX`: ``=z`` and the id as a base-37 number. This bounds every field of an id the
  API accepts (1-64 characters) to :data:`FIELD_MAX` characters, so a user id stays within
  Matrix's 255-character limit however many upper-case letters or dots the portal uses.

Exactly one field string decodes to a given id (parsing re-encodes and compares), so distinct
identities get distinct user ids and no two user ids parse to the same identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from mautrix.types import UserID

Kind = Literal["staff", "client"]
KINDS: tuple[Kind, ...] = ("staff", "client")
_KIND_NAMED: dict[str, Kind] = {kind: kind for kind in KINDS}
#: The longest user id Matrix allows (spec: "Users", user identifiers).
MAX_USER_ID_LENGTH = 255
#: The ids the provisioning API accepts, in the order the packed form numbers them.
ID_ALPHABET = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
ID_MAX_LENGTH = 64
_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_SAFE = re.compile(r"[a-z0-9-]")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz-"
_PACKED = "=z"  # '=' followed by a letter that is not a hex digit: never readable
_FIELD = r"[a-z0-9=-]+"
_LOCALPART_RE = re.compile(r"[a-z0-9._=/-]+")
_PLACEHOLDERS = ("{kind}", "{practice}", "{id}")


class TemplateError(ValueError):
    pass


def _readable(value: str) -> str:
    out = []
    for ch in value:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"={b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)


def _pack(value: str) -> str:
    # Bijective base-65 (so the length is part of the number), written in base 37.
    n = 0
    for ch in value:
        n = n * len(ID_ALPHABET) + ID_ALPHABET.index(ch) + 1
    digits = []
    while n:
        n, d = divmod(n, len(_DIGITS))
        digits.append(_DIGITS[d])
    return _PACKED + "".join(reversed(digits))


def _unpack(field: str) -> str:
    n = 0
    for ch in field[len(_PACKED) :]:
        n = n * len(_DIGITS) + _DIGITS.index(ch)
    chars = []
    while n:
        n, d = divmod(n - 1, len(ID_ALPHABET))
        chars.append(ID_ALPHABET[d])
    return "".join(reversed(chars))


#: The longest field of an id the API accepts (the packed form of 64 'z').
FIELD_MAX = len(_pack(ID_ALPHABET[-1] * ID_MAX_LENGTH))


def escape(value: str) -> str:
    """The field for ``value``; raises ValueError for an empty id."""
    if not value:
        raise ValueError("an id must not be empty")
    readable = _readable(value)
    if len(readable) > FIELD_MAX and _ID_RE.fullmatch(value):
        return _pack(value)
    return readable


def unescape(field: str) -> str:
    """The id of a field; raises ValueError unless ``field`` is exactly what escape() makes."""
    try:
        if field.startswith(_PACKED):
            value = _unpack(field)
        else:
            raw = bytearray()
            i = 0
            while i < len(field):
                if field[i] == "=":
                    hexpair = field[i + 1 : i + 3]
                    if not re.fullmatch(r"[0-9a-f]{2}", hexpair):
                        raise ValueError("bad escape")
                    raw.append(int(hexpair, 16))
                    i += 3
                else:
                    raw.extend(field[i].encode())
                    i += 1
            value = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"not a field: {field!r}") from None
    if not value or escape(value) != field:
        raise ValueError(f"not a canonical field: {field!r}")
    return value


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
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{_FIELD})")
        self._regex = re.compile(pattern)
        # The pipeline asks about the same few senders over and over: remember the answers
        # (bounded; a mapping never changes for a given template and domain).
        self._parsed = lru_cache(maxsize=16384)(self._parse)

    def localpart(self, kind: Kind, practice_id: str, local_id: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        return (
            self.template.replace("{kind}", kind)
            .replace("{practice}", escape(practice_id))
            .replace("{id}", escape(local_id))
        )

    def user_id(self, kind: Kind, practice_id: str, local_id: str) -> UserID:
        return UserID(f"@{self.localpart(kind, practice_id, local_id)}:{self.domain}")

    def parse(self, user_id: str) -> PortalIdentity | None:
        """The portal identity of a user id, or None for anyone else (the bot included)."""
        if not isinstance(user_id, str):
            return None
        return self._parsed(user_id)

    def _parse(self, user_id: str) -> PortalIdentity | None:
        if not user_id.startswith("@") or ":" not in user_id:
            return None
        localpart, _, domain = user_id[1:].partition(":")
        if domain != self.domain or localpart == self.bot_localpart:
            return None
        match = self._regex.fullmatch(localpart)
        kind = _KIND_NAMED.get(match["kind"]) if match else None
        if match is None or kind is None:
            return None
        try:
            practice_id, local_id = unescape(match["practice"]), unescape(match["id"])
        except ValueError:
            return None
        return PortalIdentity(kind, practice_id, local_id)

    def is_portal_localpart(self, localpart: str) -> bool:
        """Whether a localpart has the shape of the template (the namespace regex's test)."""
        return re.fullmatch(self._namespace_localpart(), localpart) is not None

    def _namespace_localpart(self) -> str:
        pattern = re.escape(self.template)
        pattern = pattern.replace(re.escape("{kind}"), "(staff|client)")
        for name in ("practice", "id"):
            pattern = pattern.replace(re.escape("{" + name + "}"), _FIELD)
        return pattern

    def namespace_regex(self) -> str:
        """The exclusive user namespace for the registration (portal users, not the bot).

        Anchored at the end: Synapse tests namespaces with ``re.match``, which only anchors the
        start, and ``@pb_...:example.com.evil`` must not fall into the namespace.
        """
        return f"@{self._namespace_localpart()}:{re.escape(self.domain)}$"

    def max_user_id_length(self) -> int:
        """The longest user id an id the API accepts can get (Matrix allows 255)."""
        literal = len(self.template) - sum(len(p) for p in _PLACEHOLDERS)
        longest_kind = max(len(k) for k in KINDS)
        return 1 + literal + longest_kind + 2 * FIELD_MAX + 1 + len(self.domain)


def is_valid_localpart(localpart: str) -> bool:
    """Whether a localpart uses only the characters Matrix allows in new user ids."""
    return _LOCALPART_RE.fullmatch(localpart) is not None


def validate_template(template: str) -> None:
    if not isinstance(template, str):
        raise TemplateError("must be a string")
    for placeholder in _PLACEHOLDERS:
        if template.count(placeholder) != 1:
            raise TemplateError(f"must contain {placeholder} exactly once")
    literal = template
    for placeholder in _PLACEHOLDERS:
        literal = literal.replace(placeholder, "\0")
    parts = literal.split("\0")
    for between in parts[1:-1]:
        if not between or not re.fullmatch(r"[._/]+", between):
            raise TemplateError(
                "placeholders must be separated by '_', '.' or '/' (anything else could "
                "also occur inside an id, and the user id could not be parsed back)"
            )
    for part in (parts[0], parts[-1]):
        if not re.fullmatch(r"[a-z0-9._/-]*", part):
            raise TemplateError("may only contain lowercase letters, digits, '-', '_', '.', '/'")
