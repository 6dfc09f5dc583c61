"""What the provisioning API takes: request bodies and query parameters, as pydantic models.

The route table names them; the dispatcher parses each request with them before the handler
runs (:func:`bridge.fields.parse`), and the API document describes them. Field docstrings are
the document's descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from bridge.chats.listing import CHATS_PAGE, CHATS_PAGE_MAX, FILTERS, ChatFilter
from bridge.constants import BULK_DIRECT_MAX, EXPORT_FORMATS, ExportFormat
from bridge.directory.models import ROLES, Role
from bridge.errors import Codes, PracticeError, invalid_param
from bridge.export import Window
from bridge.fields import (
    IDS_SCHEMA,
    ChatId,
    Checked,
    Email,
    Flag,
    Id,
    Ids,
    Name,
    Timezone,
    check_ids,
    choice,
    integer,
    refuse,
    text,
)


def _document(schema: dict[str, Any], cls: type[Any]) -> None:
    """In the document, every optional field of a body may be null; ``requires`` adds the
    rules between fields that JSON Schema can say."""
    schema.update(getattr(cls, "requires", {}))
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        if name in required or {"type": "null"} in prop.get("anyOf", ()):
            continue
        meta = {key: prop.pop(key) for key in ("description", "default") if key in prop}
        schema["properties"][name] = {"anyOf": [prop, {"type": "null"}], **meta}


class Body(BaseModel):
    """A JSON object. Unknown fields are ignored, and null means missing: a required field
    that is null is ``M_MISSING_PARAM``, an optional one takes its default."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra=_document)
    requires: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class Query(BaseModel):
    """Query parameters; others (``user_id``) are read elsewhere or ignored."""

    model_config = ConfigDict(use_attribute_docstrings=True)


# -- the directory ---------------------------------------------------------------------------


class PracticeWrite(Body):
    name: Name
    plan: Annotated[str, text(64)] | None = None
    """A plan of the bridge's config (`practice.plans`; by default `solo`, `plus` or `team`).
    Missing or null: `practice.default_plan`."""
    timezone: Timezone
    """An IANA time zone name."""


class StaffWrite(Body):
    name: Name
    """The display name in chats."""
    email: Email
    """For notifications."""
    role: Annotated[Role, choice(*ROLES)]
    """An owner may read the audit log and change the practice's settings."""


class ClientWrite(Body):
    name: Name
    email: Email
    """A family member's email is not used: email goes to their primary."""
    activated: Flag
    """Whether the client activated their portal account."""
    portal_access: Flag
    """Whether the practice lets the client use the portal."""
    family_primary_id: Id | None = None
    """Set for a family member (child, dependant): the client id of the family's primary, an
    active client who is not a family member. Missing or null: not a family member."""


class SessionRequest(Body):
    """Exactly one of `staff_id` and `client_id`."""

    requires = {"oneOf": [{"required": ["staff_id"]}, {"required": ["client_id"]}]}
    staff_id: Id | None = None
    client_id: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> SessionRequest:
        if self.staff_id is None and self.client_id is None:
            raise PracticeError(
                Codes.MISSING_PARAM, "Give one of 'staff_id' and 'client_id'.", param="staff_id"
            )
        if self.staff_id is not None and self.client_id is not None:
            raise invalid_param("client_id", "Give only one of 'staff_id' and 'client_id'.")
        return self


class DirectChatAccess(Body):
    enabled: Flag


class AuditQuery(Query):
    limit: Annotated[int, integer(1, 1000)] = 100
    """At most this many entries."""
    before: Annotated[int, integer(1, 2**62)] | None = None
    """Only entries with an `id` below this one (the next page)."""
    practice_id: Id | None = None
    """Required when the portal backend calls without `user_id`; ignored otherwise."""


class AppLoginQuery(Query):
    logout: Annotated[Literal["true", "false"], choice("true", "false")] = "false"
    """`true` also signs out the Matrix apps signed in with the earlier password (the portal's
    sessions stay)."""


# -- chats -----------------------------------------------------------------------------------


class DirectChatRequest(Body):
    """Staff give `client_id`; clients give `staff_id` (and `client_id` for a family
    member's chat)."""

    requires = {"anyOf": [{"required": ["client_id"]}, {"required": ["staff_id"]}]}
    chat_id: ChatId | None = None
    """Open this one of the CHOOSE_CHAT candidates."""
    client_id: Id | None = None
    staff_id: Id | None = None
    create_new: Flag = False
    """Start a new chat even if one fits."""


def _bulk_ids(value: Any) -> list[str]:
    ids = check_ids(value)
    if not 1 <= len(ids) <= BULK_DIRECT_MAX:
        raise refuse(f"'{{path}}' must list 1 to {BULK_DIRECT_MAX} client ids.")
    return ids


class BulkDirectRequest(Body):
    client_ids: Annotated[
        list[str],
        Checked(
            _bulk_ids,
            {**IDS_SCHEMA, "minItems": 1, "maxItems": BULK_DIRECT_MAX},
        ),
    ]
    """The clients to open a 1:1 chat with; a client named twice is opened once."""


class GroupChatRequest(Body):
    name: Name
    client_ids: Ids = []
    """Missing or null: none."""
    staff_ids: Ids = []
    """Missing or null: none."""


class ShareRequest(Body):
    staff_id: Id


class ChatsQuery(Query):
    filter: Annotated[ChatFilter, choice(*FILTERS)] = "all"
    """`unread`: only unread chats; `pinned`: only pinned chats."""
    include_hidden: Annotated[Literal["true", "false"], choice("true", "false")] = "false"
    """`true` lists hidden chats too (with `hidden: true`)."""
    limit: Annotated[int, integer(1, CHATS_PAGE_MAX)] = CHATS_PAGE
    """At most this many chats (a screenful by default); `next_batch` says where the rest
    starts."""
    start: str | None = Field(None, alias="from", max_length=512)
    """The `next_batch` of the previous page (the same `filter` and `include_hidden`)."""


class ExportQuery(Query):
    format: Annotated[
        ExportFormat, choice(*EXPORT_FORMATS, sentence="'{path}' must be xlsx or csv.")
    ] = "xlsx"
    """The file format."""
    first: str | None = Field(None, alias="from", json_schema_extra={"format": "date"})
    """First day to include (YYYY-MM-DD, practice time zone)."""
    last: str | None = Field(None, alias="to", json_schema_extra={"format": "date"})
    """Last day to include (YYYY-MM-DD, practice time zone)."""
    _window: Window = PrivateAttr(default_factory=Window)

    @model_validator(mode="after")
    def _days(self) -> ExportQuery:
        self._window = Window.parse(self.first, self.last)
        return self

    @property
    def window(self) -> Window:
        return self._window
