"""What the provisioning API answers, for the API document only.

The handlers answer with plain dicts (the chat list of a practitioner with 2,000 chats is built
without a model per item); these models say what those dicts hold. Every test answer is held
against them (``tests.test_openapi.Contract``), which keeps the two in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from bridge.directory.models import Role
from bridge.fields import ChatId, Id
from bridge.settings.model import Settings

UserId = Annotated[str, Field(pattern=r"^@[^:]+:.+$", description="A Matrix user id.")]
Ts = Annotated[int, Field(json_schema_extra={"format": "int64"})]
ChatKind = Literal["direct", "group"]
# A field that is left out when it does not apply (never null).
Omitted = SkipJsonSchema[None]


class Shape(BaseModel):
    """The shape of an answer; never instantiated."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class Created(Shape):
    created: bool
    """Whether this request created the record."""


class Practice(Shape):
    practice_id: Id
    name: str
    plan: str
    timezone: str


class PracticeResult(Practice, Created):
    pass


class Staff(Shape):
    practice_id: Id
    staff_id: Id
    user_id: UserId
    name: str
    email: str
    role: Role
    active: bool
    """False once removed."""


class StaffResult(Staff, Created):
    pass


class Client(Shape):
    practice_id: Id
    client_id: Id
    user_id: UserId | None
    """Null for a family member, who never has an account."""
    name: str
    email: str
    activated: bool
    portal_access: bool
    family_primary_id: Id | None
    direct_chat_access: bool
    """Whether the client may use direct chats."""
    active: bool
    """False once removed."""


class ClientResult(Client, Created):
    pass


class SessionGrant(Shape):
    user_id: UserId
    access_token: str
    """A Matrix access token. Treat it as a secret."""
    device_id: str
    homeserver: str
    """The homeserver's base URL (`homeserver.address`)."""


class AppLoginGrant(Shape):
    user_id: UserId
    username: str
    """The localpart of `user_id`: what a Matrix app's sign-in form takes as the username."""
    password: str
    """Shown this once: the bridge does not keep it (Synapse keeps only its hash)."""
    homeserver: str
    """The homeserver's base URL (`homeserver.address`)."""


class AppLoginEnded(Shape):
    user_id: UserId
    apps_signed_out: int
    """How many Matrix app sessions ended (the portal's stay)."""


class AuditEntry(Shape):
    id: Ts
    practice_id: str | None
    actor: str
    """`backend`, `backend:<user_id>` or a Matrix user id."""
    action: str
    target: str | None
    """Usually the Matrix user id acted on."""
    details: dict[str, Any]
    ts: Ts
    """Milliseconds since the Unix epoch."""


class AuditPage(Shape):
    entries: list[AuditEntry]
    """Newest first."""


# -- chats -----------------------------------------------------------------------------------


class ChatSummary(Shape):
    """A chat as the practice sees it."""

    chat_id: ChatId
    kind: ChatKind
    name: str | None
    """A group chat's name; null for a direct chat."""
    owner_staff_id: Id
    shared_with_staff_ids: list[Id]
    subject_client_ids: list[Id]
    """The client records the chat is about (family members included)."""


class ChatCreated(Shape):
    chat_id: ChatId
    created: bool
    """Whether this request created it."""


class BulkItem(Shape):
    """One client of a bulk request: its chat, or the refusal it met."""

    model_config = ConfigDict(extra="allow")
    client_id: Id
    chat_id: ChatId | Omitted = None
    created: bool | Omitted = None
    """Whether this request created the chat."""
    errcode: str | Omitted = None
    """Why this client's chat was not opened, as `POST /chats/direct` would answer."""
    error: str | Omitted = None


class BulkOpened(Shape):
    results: list[BulkItem]
    """One per client named, in the order of the request."""


class StaffMember(Shape):
    kind: Literal["staff"]
    staff_id: Id
    user_id: UserId
    name: str
    role: Role
    shared: bool
    """In the chat because it was shared with them."""


class ClientMember(Shape):
    kind: Literal["client"]
    client_id: Id
    name: str
    user_id: UserId | None
    """Null for a family member: their primary's account is in the chat."""
    family_primary_id: Id | None
    last_read_ts: Ts | None = None
    """Staff callers only: when the client's account (a family member's primary) last read
    the chat, in milliseconds since the Unix epoch; null if it never has."""


class ChatListItem(Shape):
    chat_id: ChatId
    kind: ChatKind
    name: str
    """A group chat's name; for a direct chat the other side's names."""
    pinned: bool
    unread: bool
    """Marked unread, or someone else wrote after the caller last read it."""
    hidden: bool
    last_message_ts: Ts
    """The latest message (or the chat's creation), in milliseconds since the Unix epoch."""
    unread_count: Annotated[int, Field(ge=0)]
    """Messages from others since the caller last read the chat, for a badge."""
    owner_staff_id: Id
    shared_with_staff_ids: list[Id]
    members: list[Annotated[StaffMember | ClientMember, Field(discriminator="kind")]]
    """Staff by id, then clients."""
    subject_client_ids: list[Id]


class ChatList(Shape):
    chats: list[ChatListItem]
    """Pinned first, then the latest message first."""
    next_batch: str | None = None
    """Present when more chats follow: pass it as `from` for the next page."""


class ChatRef(Shape):
    chat_id: ChatId
    kind: ChatKind
    name: str | None


class StaffContact(Shape):
    staff_id: Id
    user_id: UserId
    name: str
    role: Role
    chats: list[ChatRef]


class ClientContactEntry(Shape):
    client_id: Id
    user_id: UserId | None
    """Null for a family member."""
    name: str
    can_message: bool
    """False for a client who has not activated their account or has no portal access."""
    direct_chat_access: bool
    chats: list[ChatRef]


class ClientContact(ClientContactEntry):
    family_members: list[ClientContactEntry]


class Contacts(Shape):
    team_members: list[StaffContact]
    groups: list[ChatRef]
    clients: list[ClientContact]


class Deleted(Shape):
    deleted: Literal[True]


class PinFlag(Shape):
    chat_id: ChatId
    pinned: bool


class HideFlag(Shape):
    chat_id: ChatId
    hidden: bool


class UnreadFlag(Shape):
    chat_id: ChatId
    unread: bool


class SettingsAnswer(Settings):
    """The caller's settings (`autoresponder` for staff only) and the practice's."""

    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema["required"].remove("autoresponder")
    )
    role: Annotated[
        Literal["owner", "practitioner", "team_member", "client"],
        Field(json_schema_extra={"readOnly": True}),
    ]
    """Who the caller is in the practice (not accepted by PUT): staff see the autoresponder and
    read markers, the owner the practice's rules."""
    practice_applied: bool
    """Whether every chat of the practice follows the practice's current rules."""
    practice_pending_chats: Annotated[int, Field(ge=0)]
    """Chats still to be brought in line."""


class CheckResult(Shape):
    ok: bool
    reason: str
    """A few words: why it fails, or what it found ("nothing pending")."""


HealthChecks = Annotated[
    dict[str, CheckResult],
    Field(description="Each check by name: database, synapse, pipeline."),
]


class Health(Shape):
    status: Literal["healthy"]
    checks: HealthChecks


class Document(RootModel[dict[str, Any]]):
    """An OpenAPI document."""


class Error(Shape):
    """Every error: a Matrix-style errcode and a sentence a client can show, sometimes with
    more fields. Treat unknown errcodes and fields as possible."""

    model_config = ConfigDict(extra="allow")
    errcode: Annotated[str, Field(pattern=r"^(M_[A-Z_]+|ORG\.PRACTICEBRIDGE\.[A-Z_]+)$")]
    error: Annotated[str, Field(min_length=1)]
    param: str | Omitted = None
    """The field or parameter at fault."""
    practice_id: str | Omitted = None
    """With UNKNOWN_PRACTICE: the practice id asked for."""
    primary_id: str | Omitted = None
    """With SUB_RECORD and FAMILY_PRIMARY_IS_SUB_RECORD: the family primary's client id."""
    candidates: list[ChatSummary] | Omitted = None
    """With CHOOSE_CHAT: the chats to choose from."""
    reason: str | Omitted = None
    """With DELETE_FAILED: what the homeserver said."""
    status: Literal["unhealthy"] | Omitted = None
    """With UNHEALTHY."""
    checks: HealthChecks | Omitted = None
    """With UNHEALTHY: every check of `GET /health`, the failing ones with their reason."""
