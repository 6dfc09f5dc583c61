"""Bad input on every provisioning endpoint gets a 4xx with an errcode: never a 500, never text.

Every answer is also held against the OpenAPI document (:class:`tests.test_openapi.Contract`):
its status and errcode must be documented for that operation and its body must match the error
schema. Syntactic refusals must be refusals of the documented request schema too, so the
document and the code agree on what a valid body is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from bridge.app import Bridge
from bridge.constants import BULK_DIRECT_MAX
from tests.clients import ApiClient, Reply
from tests.test_openapi import contract

C = contract()
MISSING = object()  # a field left out of the body


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    body: dict[str, Any] | None = None
    backend_only: bool = True
    # Templates over {practice_id} and {domain}; ``user_id`` names the user a route acts for.
    query: dict[str, str] = field(default_factory=dict)
    # With the shared secret, the route needs ``?user_id=`` (it acts as a portal user).
    acts_as_user: bool = False

    def path(self, practice: str, **ids: str) -> str:
        """The path for this practice, client c1, staff s1 and a chat id that names no chat,
        unless ``ids`` say otherwise."""
        defaults = {
            "practice_id": practice,
            "staff_id": "s1",
            "client_id": "c1",
            "chat_id": NO_CHAT,
        }
        return self.template.format(**(defaults | ids))

    def params(self, practice_id: str, domain: str) -> dict[str, str]:
        return {k: v.format(practice_id=practice_id, domain=domain) for k, v in self.query.items()}

    def target(self, practice_id: str, domain: str) -> tuple[str, dict[str, str]]:
        """The path and query parameters for this practice (and client c1, staff s1)."""
        return self.path(practice_id), self.params(practice_id, domain)

    def body_target(
        self, practice_id: str, domain: str
    ) -> tuple[dict[str, Any], str, dict[str, str]]:
        """The valid body of a route that takes one, and its path and query parameters."""
        assert self.body is not None, self.name
        return self.body, *self.target(practice_id, domain)

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def portal_user(local_id: str, kind: str = "staff") -> str:
    """A portal user's id as a template over {practice_id} and {domain}."""
    return f"@pb_{kind}_{{practice_id}}_{local_id}:{{domain}}"


NO_CHAT = "!abc123"  # a well-formed chat id that names no chat


def user_route(
    method: str, template: str, body: dict[str, Any] | None = None, user: str = "s1"
) -> Endpoint:
    """A route that acts as a portal user: the practitioner s1 unless ``user`` says otherwise."""
    return Endpoint(
        method,
        template,
        body,
        backend_only=False,
        query={"user_id": portal_user(user)},
        acts_as_user=True,
    )


PRACTICE = Endpoint(
    "PUT",
    "/practices/{practice_id}",
    {"name": "Sunrise Wellness", "plan": "team", "timezone": "Europe/Berlin"},
)
PUT_STAFF = Endpoint(
    "PUT",
    "/practices/{practice_id}/staff/{staff_id}",
    {"name": "Staff s1", "email": "s1@example.com", "role": "practitioner"},
)
DELETE_STAFF = Endpoint("DELETE", "/practices/{practice_id}/staff/{staff_id}")
PUT_CLIENT = Endpoint(
    "PUT",
    "/practices/{practice_id}/clients/{client_id}",
    {
        "name": "Client c1",
        "email": "c1@example.com",
        "activated": True,
        "portal_access": True,
        "family_primary_id": None,
    },
)
DELETE_CLIENT = Endpoint("DELETE", "/practices/{practice_id}/clients/{client_id}")
SESSIONS = Endpoint("POST", "/practices/{practice_id}/sessions", {"client_id": "c1"})
AUDIT = Endpoint("GET", "/audit", backend_only=False, query={"practice_id": "{practice_id}"})
CONTACTS = user_route("GET", "/contacts")
LIST_CHATS = user_route("GET", "/chats")
DIRECT = user_route("POST", "/chats/direct", {"client_id": "c1"})
DIRECT_BULK = user_route("POST", "/chats/direct/bulk", {"client_ids": ["c1"]})
GROUP = user_route("POST", "/chats/group", {"name": "Group", "client_ids": ["c1"]})
CONVERT = user_route(
    "POST", "/chats/{chat_id}/convert", {"name": "Group", "client_ids": [], "staff_ids": ["t1"]}
)
SHARE = user_route("POST", "/chats/{chat_id}/share", {"staff_id": "t1"})
DELETE_CHAT = user_route("DELETE", "/chats/{chat_id}")
FLAGS = [
    user_route(method, f"/chats/{{chat_id}}/{flag}")
    for flag in ("pin", "hide", "unread")
    for method in ("PUT", "DELETE")
]
EXPORT = user_route("GET", "/chats/{chat_id}/export")
GET_SETTINGS = user_route("GET", "/settings")
# The owner, so that the practice's settings are checked too.
PUT_SETTINGS = user_route("PUT", "/settings", {"enter_key": "send"}, user="boss")
DIRECT_CHAT_ACCESS = Endpoint(
    "PUT",
    "/practices/{practice_id}/clients/{client_id}/direct-chat",
    {"enabled": False},
    backend_only=False,
)
APP_LOGIN = [
    Endpoint(method, "/practices/{practice_id}/staff/{staff_id}/matrix-login")
    for method in ("POST", "DELETE")
]

# Every authenticated operation of the API: a route added later belongs here too.
ENDPOINTS = [
    PRACTICE,
    PUT_STAFF,
    DELETE_STAFF,
    PUT_CLIENT,
    DELETE_CLIENT,
    SESSIONS,
    AUDIT,
    CONTACTS,
    LIST_CHATS,
    DIRECT,
    DIRECT_BULK,
    GROUP,
    CONVERT,
    SHARE,
    DELETE_CHAT,
    *FLAGS,
    EXPORT,
    GET_SETTINGS,
    PUT_SETTINGS,
    DIRECT_CHAT_ACCESS,
    *APP_LOGIN,
]
BODY_ENDPOINTS = [e for e in ENDPOINTS if e.body is not None]
PRACTICE_ROUTES = [e for e in ENDPOINTS if "{practice_id}" in e.template and e is not PRACTICE]
USER_ROUTES = [e for e in ENDPOINTS if e.acts_as_user]
CHAT_ROUTES = [e for e in ENDPOINTS if "{chat_id}" in e.template]


class Checks:
    """Collects every mismatch of a table so one run reports them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.count = 0

    def expect(
        self,
        reply: Reply,
        method: str,
        path: str,
        status: int,
        errcode: str,
        param: str | None = None,
        label: str = "",
    ) -> None:
        self.count += 1
        where = f"{label} {method} {path}".strip()
        if not isinstance(reply.body, dict):
            self.problems.append(f"{where}: {reply.status} with a non-JSON body {reply.body!r}")
            return
        got = (reply.status, reply.errcode, reply.body.get("param") if param else None)
        if got != (status, errcode, param):
            self.problems.append(f"{where}: expected {(status, errcode, param)}, got {got}")
            return
        if not isinstance(reply.body.get("error"), str) or not reply.body["error"]:
            self.problems.append(f"{where}: no 'error' sentence in {reply.body!r}")
            return
        try:
            C.check(method, path, reply)
        except AssertionError as e:
            self.problems.append(f"{where}: {e}")

    def done(self, at_least: int = 1) -> None:
        assert self.count >= at_least
        assert not self.problems, "\n".join(self.problems)


async def send(
    api: ApiClient,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    data: Any = None,
    params: dict[str, str] | None = None,
) -> Reply:
    """A request with exactly these headers and body; a non-JSON answer comes back as text."""
    url = api.base + path
    async with api.session.request(
        method, url, headers=headers or {}, data=data, params=params
    ) as resp:
        text = await resp.text()
        if resp.content_type != "application/json":
            return Reply(resp.status, f"{resp.content_type}: {text}")
        return Reply(resp.status, await resp.json())


async def send_raw(bridge: Bridge, head: bytes) -> Reply:
    """Bytes on the socket, for headers an HTTP client library would not send."""
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.config.appservice.port)
    writer.write(head + b"Host: localhost\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    if b"application/json" not in headers.lower():
        return Reply(int(status_line.split()[1]), body.decode(errors="replace"))
    return Reply(int(status_line.split()[1]), json.loads(body))


@pytest.fixture
async def practice(api: ApiClient, practice_id: str) -> AsyncIterator[str]:
    """A practice with an owner, a practitioner, a team member and a client."""
    await api.setup_practice(
        practice_id,
        staff=(("boss", "owner"), ("s1", "practitioner"), ("t1", "team_member")),
        clients=("c1",),
    )
    yield practice_id


def acting(practice_id: str, domain: str, local_id: str, kind: str = "staff") -> dict[str, str]:
    """``?user_id=`` for the backend acting as this portal user."""
    return {"user_id": portal_user(local_id, kind).format(practice_id=practice_id, domain=domain)}


async def direct_chat(api: ApiClient, practice_id: str) -> str:
    """The practitioner s1's 1:1 chat with the client c1, as it goes in a path."""
    params = acting(practice_id, api.homeserver.domain, "s1")
    reply = await api.call("POST", "/chats/direct", {"client_id": "c1"}, params=params)
    assert reply.status in (200, 201), reply.body
    return quote(reply.body["chat_id"], safe="!")


def test_the_tables_cover_every_documented_operation() -> None:
    documented = {
        f"{method} {template}"
        for method, template, op in C.operations()
        if op.get("security", C.doc["security"]) != []
    }
    assert {e.name for e in ENDPOINTS} == documented


# -- authentication --------------------------------------------------------------------------


async def _new_clients(api: ApiClient, practice: str, **changes: dict[str, Any]) -> None:
    """New client records: PUT_CLIENT's body with each one's changes."""
    for client_id, change in changes.items():
        reply = await api.put_client(practice, client_id, **((PUT_CLIENT.body or {}) | change))
        assert reply.status == 201, reply.body


async def test_missing_or_malformed_authorization_is_refused_everywhere(
    api: ApiClient, practice: str
) -> None:
    checks = Checks()
    domain = api.homeserver.domain
    for endpoint in ENDPOINTS:
        path = endpoint.path(practice)
        for header in (None, f"Basic {api.secret}", "Bearer", "Bearer    ", f"Token {api.secret}"):
            reply = await send(
                api,
                endpoint.method,
                path,
                headers={"Authorization": header} if header is not None else {},
                data=b'{"name": "x"}',
                params=endpoint.params(practice, domain),
            )
            checks.expect(reply, endpoint.method, path, 401, "M_MISSING_TOKEN", label=header)
    checks.done(len(ENDPOINTS) * 5)
    refused = await api.call("GET", "/audit", auth=False, params={"practice_id": practice})
    assert refused.body == C.example("MissingToken", practice, api.homeserver.domain)


async def test_a_wrong_secret_is_an_unknown_token_everywhere(
    api: ApiClient, bridge: Bridge, practice: str
) -> None:
    checks = Checks()
    domain = api.homeserver.domain
    for endpoint in ENDPOINTS:
        path = endpoint.path(practice)
        params = endpoint.params(practice, domain)
        for token in ("wrong-secret", api.secret + "x", api.secret[:-1], "t" * 4000):
            reply = await api.call(
                endpoint.method, path, endpoint.body, token=token, params=params
            )
            checks.expect(reply, endpoint.method, path, 401, "M_UNKNOWN_TOKEN", label=token[:12])
        # Bytes that are not ASCII, or not even UTF-8, are no token either.
        target = bridge.config.provisioning.prefix + path
        if params:
            target += "?" + urlencode(params)
        for token in ("café".encode(), b"\xff\xfesecret"):
            head = (
                f"{endpoint.method} {target} HTTP/1.1\r\n".encode()
                + b"Authorization: Bearer "
                + token
                + b"\r\n"
            )
            reply = await send_raw(bridge, head)
            checks.expect(reply, endpoint.method, path, 401, "M_UNKNOWN_TOKEN", label=repr(token))
    checks.done(len(ENDPOINTS) * 6)
    refused = await api.call("GET", "/audit", token="wrong", params={"practice_id": practice})
    assert refused.body == C.example("UnknownToken", practice, api.homeserver.domain)


async def test_the_bearer_scheme_is_case_insensitive(api: ApiClient, practice: str) -> None:
    reply = await send(
        api,
        "GET",
        "/audit",
        headers={"Authorization": f"bearer {api.secret}"},
        params={"practice_id": practice},
    )
    assert reply.status == 200, reply.body
    C.check("GET", "/audit", reply)


async def test_portal_users_tokens_are_refused_on_backend_routes(
    api: ApiClient, practice: str
) -> None:
    client = await api.session_for(practice, client_id="c1")
    practitioner = await api.session_for(practice, staff_id="s1")
    owner = await api.session_for(practice, staff_id="boss")
    checks = Checks()
    for endpoint in ENDPOINTS:
        path = endpoint.path(practice)
        for user in (client, practitioner, owner):
            if not endpoint.backend_only:
                continue
            reply = await api.call(endpoint.method, path, endpoint.body, token=user.token)
            checks.expect(reply, endpoint.method, path, 403, "M_FORBIDDEN", label=user.user_id)
    # The audit log is for the owner only; nobody may act for someone else with their token.
    for user in (client, practitioner):
        reply = await api.call("GET", "/audit", token=user.token)
        checks.expect(reply, "GET", "/audit", 403, "M_FORBIDDEN", label=user.user_id)
    reply = await api.call("GET", "/audit", token=owner.token, params={"user_id": client.user_id})
    checks.expect(reply, "GET", "/audit", 403, "M_FORBIDDEN", label="owner acting for client")
    checks.done(sum(e.backend_only for e in ENDPOINTS) * 3 + 3)

    refused = await api.call("PUT", f"/practices/{practice}", PRACTICE.body, token=owner.token)
    assert refused.body == C.example("BackendOnly", practice, api.homeserver.domain)
    allowed = await api.call("GET", "/audit", token=owner.token)
    assert allowed.status == 200, allowed.body
    C.check("GET", "/audit", allowed)
    assert {e["practice_id"] for e in allowed.body["entries"]} == {practice}


async def test_the_backend_may_only_act_for_portal_users(api: ApiClient, practice: str) -> None:
    domain = api.homeserver.domain
    bad_users = [
        "",
        "alice",
        f"@alice:{domain}",
        f"@pb_client_{practice}_c1:elsewhere.test",
        f"@pb_client_{practice}_=zz:{domain}",
        f"@pb_client_{practice}_=:{domain}",
        f"@pb_robot_{practice}_c1:{domain}",
    ]
    checks = Checks()
    for endpoint in ENDPOINTS:
        path = endpoint.path(practice)
        for user_id in bad_users:
            params = endpoint.params(practice, domain) | {"user_id": user_id}
            reply = await api.call(endpoint.method, path, endpoint.body, params=params)
            checks.expect(
                reply, endpoint.method, path, 400, "M_INVALID_PARAM", "user_id", label=user_id
            )
    checks.done(len(ENDPOINTS) * len(bad_users))


async def test_the_backend_names_the_user_on_user_routes(api: ApiClient, practice: str) -> None:
    checks = Checks()
    for endpoint in USER_ROUTES:
        path = endpoint.path(practice)
        reply = await api.call(endpoint.method, path, endpoint.body)
        checks.expect(reply, endpoint.method, path, 400, "M_MISSING_PARAM", "user_id")
        if reply.body != C.example("MissingUserId", practice, api.homeserver.domain):
            checks.problems.append(f"{path}: {reply.body} is not the documented MissingUserId")
    checks.done(len(USER_ROUTES))


async def test_a_users_token_acts_only_for_that_user(api: ApiClient, practice: str) -> None:
    practitioner = await api.session_for(practice, staff_id="s1")
    client = await api.session_for(practice, client_id="c1")
    checks = Checks()
    for endpoint in ENDPOINTS:
        if endpoint.backend_only or endpoint is AUDIT:
            continue
        path = endpoint.path(practice)
        for token, other in ((practitioner.token, client.user_id), (client.token, "@x:y")):
            params = {"user_id": other}
            reply = await api.call(
                endpoint.method, path, endpoint.body, token=token, params=params
            )
            checks.expect(reply, endpoint.method, path, 403, "M_FORBIDDEN", label=other)
    checks.done(2 * (len(USER_ROUTES) + 1))
    reply = await api.call("GET", "/chats", token=client.token, params={"user_id": "x"})
    assert reply.body == C.example("ForbiddenCaller", practice, api.homeserver.domain)


async def test_users_without_access_are_refused_on_user_routes(
    api: ApiClient, practice: str
) -> None:
    """Acting for someone who is not a team member or client with access: 403 with the reason."""
    await _new_clients(
        api,
        practice,
        kid={"family_primary_id": "c1"},
        pending={"activated": False},
        blocked={"portal_access": False},
        gone={},
    )
    await api.call("DELETE", DELETE_CLIENT.path(practice, client_id="gone"))
    await api.call("DELETE", DELETE_STAFF.path(practice, staff_id="t1"))
    domain = api.homeserver.domain
    table = [
        (acting(practice, domain, "t1"), "ORG.PRACTICEBRIDGE.STAFF_REMOVED", "StaffRemoved"),
        (acting(practice, domain, "ghost"), "ORG.PRACTICEBRIDGE.UNKNOWN_USER", "UnknownUser"),
        (acting(practice, domain, "kid", "client"), "ORG.PRACTICEBRIDGE.SUB_RECORD", None),
        (
            acting(practice, domain, "pending", "client"),
            "ORG.PRACTICEBRIDGE.CLIENT_NOT_ACTIVATED",
            "ClientNotActivated",
        ),
        (
            acting(practice, domain, "blocked", "client"),
            "ORG.PRACTICEBRIDGE.NO_PORTAL_ACCESS",
            "NoPortalAccess",
        ),
        (acting(practice, domain, "gone", "client"), "ORG.PRACTICEBRIDGE.CLIENT_REMOVED", None),
    ]
    checks = Checks()
    for endpoint in ENDPOINTS:
        if endpoint.backend_only or endpoint is AUDIT:
            continue
        path = endpoint.path(practice)
        for params, errcode, example in table:
            reply = await api.call(endpoint.method, path, endpoint.body, params=params)
            checks.expect(reply, endpoint.method, path, 403, errcode, label=params["user_id"])
            if example and reply.body != C.example(example, practice, domain):
                checks.problems.append(f"{path}: {reply.body} is not the documented {example}")
    checks.done(len(table) * (len(USER_ROUTES) + 1))


# -- request bodies --------------------------------------------------------------------------

NOT_JSON = [
    b"",
    b"   ",
    b"not json",
    b"{",
    b'{"name": "x",}',
    b"{'name': 'x'}",
    b"\xff\xfe\xfd",
    b'{"name": "caf\xe9"}',  # Latin-1, not UTF-8
    b'{"name": NaN, "timezone": "UTC"}',
    b'{"name": "x", "timezone": "UTC", "n": Infinity}',
    b'{"name": ' + b"1" * 5000 + b', "timezone": "UTC"}',  # too many digits to convert
    b"[" * 30_000 + b"]" * 30_000,  # nested past the parser's depth
    b'{"a": ' * 5_000 + b"1" + b"}" * 5_000,
]
NOT_AN_OBJECT = [b"[]", b'[{"name": "x"}]', b'"text"', b"42", b"null", b"true"]


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.name)
async def test_bodies_that_are_not_json_objects_are_refused(
    api: ApiClient, practice: str, endpoint: Endpoint
) -> None:
    domain = api.homeserver.domain
    path, params = endpoint.target(practice, domain)
    checks = Checks()
    for raw in NOT_JSON:
        reply = await api.call(endpoint.method, path, raw=raw, params=params)
        checks.expect(reply, endpoint.method, path, 400, "M_NOT_JSON", label=repr(raw[:20]))
    for raw in NOT_AN_OBJECT:
        reply = await api.call(endpoint.method, path, raw=raw, params=params)
        checks.expect(reply, endpoint.method, path, 400, "M_BAD_JSON", label=repr(raw[:20]))
    checks.done(len(NOT_JSON) + len(NOT_AN_OBJECT))
    reply = await api.call(endpoint.method, path, raw=b"{", params=params)
    assert reply.body == C.example("NotJson", practice, domain)
    reply = await api.call(endpoint.method, path, raw=b"[]", params=params)
    assert reply.body == C.example("BadJson", practice, domain)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0.01)  # let each chunk arrive on its own


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.name)
async def test_bodies_over_64_kib_are_refused(
    api: ApiClient, practice: str, endpoint: Endpoint
) -> None:
    body, path, params = endpoint.body_target(practice, api.homeserver.domain)
    auth = {"Authorization": f"Bearer {api.secret}", "Content-Type": "application/json"}
    huge = json.dumps(body | {"padding": "x" * (64 * 1024)}).encode()
    checks = Checks()
    # With a Content-Length, and streamed in chunks without one.
    reply = await send(api, endpoint.method, path, headers=auth, data=huge, params=params)
    checks.expect(reply, endpoint.method, path, 413, "M_TOO_LARGE", label="content-length")
    chunked = _chunks(huge, 16 * 1024)
    reply = await send(api, endpoint.method, path, headers=auth, data=chunked, params=params)
    checks.expect(reply, endpoint.method, path, 413, "M_TOO_LARGE", label="chunked")
    checks.done(2)
    assert reply.body == C.example("TooLarge", practice, api.homeserver.domain)

    # Just under the limit, arriving in pieces, is read whole and accepted (padded with
    # whitespace: PUT /settings refuses unknown fields).
    if "{chat_id}" in endpoint.template:
        path = endpoint.path(practice, chat_id=await direct_chat(api, practice))
    fits = (json.dumps(body)[:-1] + " " * (60 * 1024) + "}").encode()
    chunked = _chunks(fits, 8 * 1024)
    reply = await send(api, endpoint.method, path, headers=auth, data=chunked, params=params)
    assert reply.status in (200, 201), reply.body
    C.check(endpoint.method, path, reply)


@dataclass(frozen=True)
class Bad:
    value: Any
    errcode: str = "M_INVALID_PARAM"
    # False where JSON Schema cannot say it: the documented schema accepts the value.
    schema_rejects: bool = True


def _text(max_len: int, *, required: bool = True) -> list[Bad]:
    cases = [
        Bad(5),
        Bad(1.5),
        Bad(True),
        Bad([]),
        Bad({}),
        Bad(["x"]),
        Bad(""),
        Bad("   "),
        Bad("x" * (max_len + 1)),
        Bad("a\x00b"),
        Bad("a\x07b"),
        Bad("a\x1bb"),
        Bad("a\x7fb"),
        Bad("a\x85b"),
        Bad("a\x9fb"),
        Bad("a\nb"),
        Bad("a\rb"),
        Bad("a\tb"),
        Bad("a\u2028b"),
        Bad("\ud800 lone surrogate", schema_rejects=False),
    ]
    if required:
        cases += [Bad(MISSING, "M_MISSING_PARAM"), Bad(None, "M_MISSING_PARAM")]
    return cases


def _ident(*, required: bool = False) -> list[Bad]:
    cases = [
        Bad(5),
        Bad(True),
        Bad([]),
        Bad(""),
        Bad("a" * 65),
        Bad("bad id"),
        Bad("café"),
        Bad("a/b"),
        Bad("a\x00"),
        Bad("😀"),
    ]
    if required:
        cases += [Bad(MISSING, "M_MISSING_PARAM"), Bad(None, "M_MISSING_PARAM")]
    return cases


def _bool() -> list[Bad]:
    return [
        Bad("true"),
        Bad("false"),
        Bad(1),
        Bad(0),
        Bad("yes"),
        Bad([]),
        Bad({}),
        Bad(MISSING, "M_MISSING_PARAM"),
        Bad(None, "M_MISSING_PARAM"),
    ]


EMAIL = _text(254) + [
    Bad("x" * 243 + "@example.com"),  # 255 characters
    Bad("no-at-sign"),
    Bad("a@b"),
    Bad("a @b.c"),
    Bad("a@b@c.d"),
    Bad("@b.c"),
    Bad("a@.c"),
    Bad("a@b.c\u00a0x"),
]
ROLE = [
    Bad("admin"),
    Bad(""),
    Bad("Owner"),
    Bad("owner "),
    Bad(1),
    Bad(["owner"]),
    Bad({"role": "owner"}),
    Bad(MISSING, "M_MISSING_PARAM"),
    Bad(None, "M_MISSING_PARAM"),
]
ID_LIST = [
    Bad("c1"),
    Bad(5),
    Bad(True),
    Bad({}),
    Bad([5]),
    Bad([""]),
    Bad(["bad id"]),
    Bad(["a" * 65]),
    Bad(["café"]),
    Bad([None]),
    Bad([["c1"]]),
]
CHAT_ID_FIELD = [
    Bad(5),
    Bad(True),
    Bad([]),
    Bad(""),
    Bad("abc123"),
    Bad("!"),
    Bad("#room:example.org"),
    Bad("!a b"),
    Bad("!café"),
    Bad("!a\nb"),
    Bad("!" + "a" * 255),
]
OPTIONAL_BOOL = [Bad("true"), Bad(1), Bad(0), Bad("yes"), Bad([]), Bad({})]
# PUT /settings: every field is optional, and null is no value.
SETTING_BOOL = OPTIONAL_BOOL + [Bad(None)]
FIELDS: dict[str, dict[str, list[Bad]]] = {
    PRACTICE.name: {
        "name": _text(256),
        "plan": _text(64, required=False),
        "timezone": _text(64),
    },
    PUT_STAFF.name: {"name": _text(256), "email": EMAIL, "role": ROLE},
    PUT_CLIENT.name: {
        "name": _text(256),
        "email": EMAIL,
        "activated": _bool(),
        "portal_access": _bool(),
        "family_primary_id": _ident(),
    },
    SESSIONS.name: {"staff_id": _ident(), "client_id": _ident()},
    DIRECT.name: {
        # Staff name a client: without one the request cannot be told (JSON Schema's anyOf
        # cannot say that null is no value).
        "client_id": _ident()
        + [Bad(MISSING, "M_INVALID_PARAM"), Bad(None, "M_INVALID_PARAM", schema_rejects=False)],
        "staff_id": _ident(),
        "chat_id": CHAT_ID_FIELD,
        "create_new": OPTIONAL_BOOL,
    },
    DIRECT_BULK.name: {
        "client_ids": ID_LIST
        + [
            Bad([]),
            Bad([f"c{i}" for i in range(BULK_DIRECT_MAX + 1)]),
            Bad(MISSING, "M_MISSING_PARAM"),
            Bad(None, "M_MISSING_PARAM"),
        ]
    },
    GROUP.name: {"name": _text(256), "client_ids": ID_LIST, "staff_ids": ID_LIST},
    CONVERT.name: {"name": _text(256), "client_ids": ID_LIST, "staff_ids": ID_LIST},
    SHARE.name: {"staff_id": _ident(required=True)},
    PUT_SETTINGS.name: {
        "enter_key": [
            Bad("enter"),
            Bad("Send"),
            Bad("send "),
            Bad(""),
            Bad(1),
            Bad(True),
            Bad(None),
            Bad([]),
            Bad({}),
        ],
        "open_recent_chat": SETTING_BOOL,
        "portal_alerts": SETTING_BOOL,
        "email_alerts": SETTING_BOOL,
        "autoresponder": [Bad("on"), Bad(True), Bad(1), Bad([]), Bad(None)],
        "practice": [Bad("x"), Bad(True), Bad(1), Bad([]), Bad(None)],
    },
    DIRECT_CHAT_ACCESS.name: {"enabled": _bool()},
}


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.name)
async def test_each_field_refuses_wrong_types_missing_values_and_bad_text(
    api: ApiClient, practice: str, endpoint: Endpoint
) -> None:
    valid_body, path, params = endpoint.body_target(practice, api.homeserver.domain)
    validator = C.request_validator(endpoint.method, path)
    checks = Checks()
    for name, cases in FIELDS[endpoint.name].items():
        base = {name: "s1"} if endpoint is SESSIONS and name == "staff_id" else valid_body
        assert not list(validator.iter_errors(base)), base
        for case in cases:
            body = {k: v for k, v in base.items() if k != name}
            if case.value is not MISSING:
                body[name] = case.value
            label = f"{name}={case.value!r:.40}"
            if case.schema_rejects and not list(validator.iter_errors(body)):
                checks.problems.append(f"{label}: the documented schema accepts {body!r}")
            reply = await api.call(endpoint.method, path, body, params=params)
            checks.expect(reply, endpoint.method, path, 400, case.errcode, name, label=label)
    checks.done(sum(len(c) for c in FIELDS[endpoint.name].values()))


async def test_a_session_names_exactly_one_user(api: ApiClient, practice: str) -> None:
    path = SESSIONS.path(practice)
    validator = C.request_validator("POST", path)
    checks = Checks()
    for body, errcode, param in [
        ({}, "M_MISSING_PARAM", "staff_id"),
        ({"staff_id": None, "client_id": None}, "M_MISSING_PARAM", "staff_id"),
        ({"user_id": "c1"}, "M_MISSING_PARAM", "staff_id"),
        ({"staff_id": "s1", "client_id": "c1"}, "M_INVALID_PARAM", "client_id"),
    ]:
        if not list(validator.iter_errors(body)):
            checks.problems.append(f"the documented schema accepts {body!r}")
        reply = await api.call("POST", path, body)
        checks.expect(reply, "POST", path, 400, errcode, param, label=str(body))
    checks.done(4)


# -- path ids and query parameters -------------------------------------------------------------

IDS = ("practice_id", "staff_id", "client_id")
BAD_IDS = [
    "a" * 65,
    "a" * 2000,
    "a/b",
    "café",
    "Ünïcödé",
    "😀",
    "a b",
    "a+b",
    "a:b",
    "a@b",
    "~x",
    "%",
    "a\x00b",
    "a\nb",
    "日本",
]


async def test_bad_ids_in_the_path_are_refused_everywhere(api: ApiClient, practice: str) -> None:
    checks = Checks()
    for endpoint in ENDPOINTS:
        names = [n for n in IDS if f"{{{n}}}" in endpoint.template]
        for name in names:
            for bad in BAD_IDS:
                path = endpoint.path(practice, **{name: quote(bad, safe="")})
                reply = await api.call(endpoint.method, path, endpoint.body)
                checks.expect(
                    reply, endpoint.method, path, 400, "M_INVALID_PARAM", name, label=repr(bad)
                )
    checks.done(sum(f"{{{n}}}" in e.template for e in ENDPOINTS for n in IDS) * len(BAD_IDS))


async def test_bad_audit_queries_are_refused(api: ApiClient, practice: str) -> None:
    table: list[tuple[dict[str, str], str, str]] = [
        ({}, "M_MISSING_PARAM", "practice_id"),
        ({"practice_id": ""}, "M_INVALID_PARAM", "practice_id"),
        ({"practice_id": "a/b"}, "M_INVALID_PARAM", "practice_id"),
        ({"practice_id": "a" * 65}, "M_INVALID_PARAM", "practice_id"),
        ({"practice_id": "café"}, "M_INVALID_PARAM", "practice_id"),
    ]
    for bad in ["", "abc", "0", "-1", "1001", "1.5", "1e3", " 5", "5 ", "١٠", "0x10", "9" * 30]:
        table.append(({"practice_id": practice, "limit": bad}, "M_INVALID_PARAM", "limit"))
    for bad in ["", "x", "0", "-5", str(2**62 + 1), "9" * 5000]:
        table.append(({"practice_id": practice, "before": bad}, "M_INVALID_PARAM", "before"))
    checks = Checks()
    for params, errcode, param in table:
        reply = await api.call("GET", "/audit", params=params)
        checks.expect(reply, "GET", "/audit", 400, errcode, param, label=str(params)[:60])
    checks.done(len(table))

    reply = await api.call(
        "GET", "/audit", params={"practice_id": practice, "limit": "1000", "before": "1"}
    )
    assert (reply.status, reply.body) == (200, {"entries": []})
    reply = await api.call("GET", "/audit", params={"practice_id": practice, "limit": "1"})
    assert reply.status == 200 and len(reply.body["entries"]) == 1
    C.check("GET", "/audit", reply)


# Chat ids are room ids: '!' and, in room version 12, 43 URL-safe base64 characters.
BAD_CHAT_IDS = [
    "abc123",
    "!",
    "#room:example.org",
    "@pb_staff_x_s1:example.org",
    "!a b",
    "!café",
    "!😀",
    "!日本",
    "!a\x00b",
    "!a\nb",
    "!a?b",
    "!a#b",
    "!a@b",
    "!%",
    "!" + "a" * 255,
    "a" * 2000,
]


async def test_bad_chat_ids_in_the_path_are_refused_everywhere(
    api: ApiClient, practice: str
) -> None:
    domain = api.homeserver.domain
    checks = Checks()
    for endpoint in CHAT_ROUTES:
        for bad in BAD_CHAT_IDS:
            path = endpoint.path(practice, chat_id=quote(bad, safe=""))
            params = endpoint.params(practice, domain)
            reply = await api.call(endpoint.method, path, endpoint.body, params=params)
            checks.expect(
                reply, endpoint.method, path, 400, "M_INVALID_PARAM", "chat_id", label=repr(bad)
            )
    checks.done(len(CHAT_ROUTES) * len(BAD_CHAT_IDS))
    path = DELETE_CHAT.path(practice, chat_id="abc")
    reply = await api.call("DELETE", path, params=DELETE_CHAT.params(practice, domain))
    assert reply.body == C.example("InvalidChatId", practice, domain)


async def test_chats_nobody_may_see_are_not_found_everywhere(
    api: ApiClient, practice: str
) -> None:
    """Well-formed ids of no chat, and a chat of someone else: the same 404."""
    domain = api.homeserver.domain
    theirs = await direct_chat(api, practice)
    checks = Checks()
    for endpoint in CHAT_ROUTES:
        for chat_id in (NO_CHAT, "!abc:example.org", "!" + "A" * 43, theirs):
            path = endpoint.path(practice, chat_id=chat_id)
            params = acting(practice, domain, "t1")  # in the practice, not in the chat
            reply = await api.call(endpoint.method, path, endpoint.body, params=params)
            checks.expect(
                reply, endpoint.method, path, 404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT", label=chat_id
            )
            if reply.body != C.example("UnknownChat", practice, domain):
                checks.problems.append(f"{path}: {reply.body} is not the documented UnknownChat")
    checks.done(len(CHAT_ROUTES) * 4)


async def test_bad_chat_list_queries_are_refused(api: ApiClient, practice: str) -> None:
    user = acting(practice, api.homeserver.domain, "s1")
    table: list[tuple[dict[str, str], str]] = []
    for bad in ["", "ALL", "starred", "all ", "unread,pinned", "pinned\x00"]:
        table.append(({"filter": bad}, "filter"))
    for bad in ["", "True", "1", "yes", "false ", "null"]:
        table.append(({"include_hidden": bad}, "include_hidden"))
    checks = Checks()
    for query, param in table:
        reply = await api.call("GET", "/chats", params=user | query)
        checks.expect(reply, "GET", "/chats", 400, "M_INVALID_PARAM", param, label=str(query))
    checks.done(len(table))
    reply = await api.call("GET", "/chats", params=user | {"filter": "x"})
    assert reply.body == C.example("InvalidFilter", practice, api.homeserver.domain)
    for chat_filter in ("all", "unread", "pinned"):
        for hidden in ("true", "false"):
            query = {"filter": chat_filter, "include_hidden": hidden}
            reply = await api.call("GET", "/chats", params=user | query)
            assert reply.status == 200, reply.body
            C.check("GET", "/chats", reply)


async def test_each_setting_is_checked_and_named(api: ApiClient, practice: str) -> None:
    """PUT /settings takes any part of the object; a wrong part is named by its path."""
    owner = acting(practice, api.homeserver.domain, "boss")
    path = "/settings"
    validator = C.request_validator("PUT", path)
    period = {"day": "mon", "start": "09:00", "end": "17:00"}

    def periods(*items: Any) -> dict[str, Any]:
        return {"autoresponder": {"periods": list(items)}}

    table: list[tuple[Any, str, bool]] = [
        ({"colour": "blue"}, "colour", True),
        ({"autoresponder": {"enabled": "yes"}}, "autoresponder.enabled", True),
        ({"autoresponder": {"message": 5}}, "autoresponder.message", True),
        ({"autoresponder": {"message": "x" * 2001}}, "autoresponder.message", True),
        ({"autoresponder": {"mesage": "typo"}}, "autoresponder.mesage", True),
        # JSON Schema cannot say that an enabled autoresponder needs a message.
        ({"autoresponder": {"enabled": True}}, "autoresponder.message", False),
        ({"autoresponder": {"periods": "weekends"}}, "autoresponder.periods", True),
        (periods(*[period] * 6), "autoresponder.periods", True),
        (periods("mon"), "autoresponder.periods[0]", True),
        (periods(period, period | {"day": "Mon"}), "autoresponder.periods[1].day", True),
        (periods(period | {"day": None}), "autoresponder.periods[0].day", True),
        (periods({"start": "09:00", "end": "10:00"}), "autoresponder.periods[0].day", True),
        (periods(period | {"start": "9:00"}), "autoresponder.periods[0].start", True),
        (periods(period | {"start": "24:01"}), "autoresponder.periods[0].start", True),
        (periods(period | {"start": 900}), "autoresponder.periods[0].start", True),
        (periods(period | {"end": "17:60"}), "autoresponder.periods[0].end", True),
        (periods(period | {"end": "5pm"}), "autoresponder.periods[0].end", True),
        (periods(period | {"note": "x"}), "autoresponder.periods[0].note", True),
        # Nor that a period starts before it ends.
        (
            periods(period | {"start": "17:00", "end": "09:00"}),
            "autoresponder.periods[0].start",
            False,
        ),
        (periods(period | {"end": "09:00"}), "autoresponder.periods[0].start", False),
        ({"practice": {"plan": "team"}}, "practice.plan", True),
        ({"practice": {"client_message_limit": 0}}, "practice.client_message_limit", True),
        ({"practice": {"client_message_limit": 100_001}}, "practice.client_message_limit", True),
        ({"practice": {"client_message_limit": 1.5}}, "practice.client_message_limit", True),
        ({"practice": {"client_message_limit": "500"}}, "practice.client_message_limit", True),
        ({"practice": {"client_message_limit": False}}, "practice.client_message_limit", True),
        ({"practice": {"email_include_content": True}}, "practice.email_include_content", True),
        (
            {"practice": {"email_include_content": {"clients": "no"}}},
            "practice.email_include_content.clients",
            True,
        ),
        (
            {"practice": {"email_include_content": {"family": True}}},
            "practice.email_include_content.family",
            True,
        ),
        ({"practice": {"clients_may_export": None}}, "practice.clients_may_export", True),
        (
            {"practice": {"allow_direct_chat_sharing": "false"}},
            "practice.allow_direct_chat_sharing",
            True,
        ),
    ]
    before = await api.call("GET", path, params=owner)
    checks = Checks()
    for body, param, schema_rejects in table:
        label = json.dumps(body)[:60]
        if schema_rejects and not list(validator.iter_errors(body)):
            checks.problems.append(f"{label}: the documented schema accepts it")
        reply = await api.call("PUT", path, body, params=owner)
        checks.expect(reply, "PUT", path, 400, "M_INVALID_PARAM", param, label=label)
    checks.done(len(table))
    assert (await api.call("GET", path, params=owner)).body == before.body
    domain = api.homeserver.domain
    reply = await api.call("PUT", path, {"colour": "blue"}, params=owner)
    assert reply.body == C.example("UnknownSetting", practice, domain)
    reply = await api.call("PUT", path, periods(period | {"start": "9"}), params=owner)
    assert reply.body == C.example("InvalidSetting", practice, domain)
    reply = await api.call("PUT", path, {"autoresponder": {"enabled": True}}, params=owner)
    assert reply.body == C.example("AutoresponderWithoutMessage", practice, domain)

    # The edges that are allowed.
    for body in [
        {},
        {"practice": {}},
        {"practice": {"client_message_limit": None}},
        {"practice": {"client_message_limit": 1, "email_include_content": {"staff": True}}},
        {"practice": {"client_message_limit": 100_000}},
        periods(*[period | {"start": "00:00", "end": "24:00"}] * 5),
        periods(),
        {"autoresponder": {"enabled": True, "message": "Away."}},
    ]:
        assert not list(validator.iter_errors(body)), body
        reply = await api.call("PUT", path, body, params=owner)
        assert reply.status == 200, (body, reply.body)
        C.check("PUT", path, reply)


# -- the chats' and the settings' own rules ----------------------------------------------------


async def test_chat_refusals_say_why(api: ApiClient, practice: str) -> None:
    """Each rule the chat and settings routes enforce (docs/architecture.md), refused as
    documented."""
    domain = api.homeserver.domain
    await _new_clients(
        api,
        practice,
        c2={},
        pending={"activated": False},
        blocked={"portal_access": False},
        closed={},
    )
    closed = DIRECT_CHAT_ACCESS.path(practice, client_id="closed")
    assert (await api.call("PUT", closed, {"enabled": False})).status == 200
    chat = await direct_chat(api, practice)
    s1 = acting(practice, domain, "s1")
    group = await api.call(
        "POST", "/chats/group", {"name": "Group", "client_ids": ["c1"]}, params=s1
    )
    assert group.status == 201, group.body
    group_chat = quote(group.body["chat_id"], safe="!")
    shared = await api.call("POST", f"/chats/{chat}/share", {"staff_id": "t1"}, params=s1)
    assert shared.status == 200, shared.body

    P = "ORG.PRACTICEBRIDGE."
    c1 = ("c1", "client")
    table: list[tuple[Any, str, str, Any, int, str, str | None]] = [
        # who, method, path, body, status, errcode, documented example
        (c1, "POST", "/chats/group", GROUP.body, 403, P + "STAFF_ONLY", "StaffOnly"),
        (c1, "POST", f"/chats/{chat}/convert", CONVERT.body, 403, P + "STAFF_ONLY", None),
        (c1, "POST", f"/chats/{chat}/share", SHARE.body, 403, P + "STAFF_ONLY", None),
        (c1, "DELETE", f"/chats/{chat}", None, 403, P + "STAFF_ONLY", None),
        (
            "t1",
            "POST",
            f"/chats/{chat}/share",
            {"staff_id": "boss"},
            403,
            P + "NOT_CHAT_OWNER",
            "NotChatOwner",
        ),
        ("t1", "DELETE", f"/chats/{chat}", None, 403, P + "NOT_CHAT_OWNER", "NotChatOwnerDelete"),
        (
            "s1",
            "POST",
            f"/chats/{group_chat}/share",
            SHARE.body,
            409,
            P + "NOT_DIRECT",
            "NotDirect",
        ),
        (
            "s1",
            "POST",
            f"/chats/{group_chat}/convert",
            CONVERT.body,
            409,
            P + "NOT_DIRECT",
            "AlreadyGroup",
        ),
        (
            "s1",
            "POST",
            f"/chats/{chat}/share",
            {"staff_id": "nobody"},
            404,
            P + "UNKNOWN_STAFF",
            "UnknownStaff",
        ),
        (
            "s1",
            "POST",
            "/chats/direct",
            {"client_id": "pending"},
            403,
            P + "CLIENT_NOT_ACTIVATED",
            "ClientNotActivated",
        ),
        (
            "s1",
            "POST",
            "/chats/direct",
            {"client_id": "blocked"},
            403,
            P + "NO_PORTAL_ACCESS",
            "NoPortalAccess",
        ),
        (
            "s1",
            "POST",
            "/chats/direct",
            {"client_id": "nobody"},
            404,
            P + "UNKNOWN_CLIENT",
            "UnknownClient",
        ),
        (
            "s1",
            "POST",
            "/chats/direct",
            {"client_id": "closed"},
            403,
            P + "DIRECT_CHAT_DISABLED",
            "DirectChatDisabled",
        ),
        (
            "s1",
            "POST",
            "/chats/direct",
            {"staff_id": "t1"},
            400,
            "M_INVALID_PARAM",
            "DirectNeedsClientId",
        ),
        (
            "s1",
            "POST",
            "/chats/direct",
            {"client_id": "c1", "chat_id": NO_CHAT},
            404,
            P + "UNKNOWN_CHAT",
            "UnknownChat",
        ),
        (
            c1,
            "POST",
            "/chats/direct",
            {"client_id": "c1"},
            400,
            "M_INVALID_PARAM",
            "DirectNeedsStaffId",
        ),
        (c1, "POST", "/chats/direct", {"staff_id": "nobody"}, 404, P + "UNKNOWN_STAFF", None),
        (
            c1,
            "POST",
            "/chats/direct",
            {"staff_id": "s1", "client_id": "c2"},
            404,
            P + "UNKNOWN_CLIENT",
            None,
        ),
        (
            ("closed", "client"),
            "POST",
            "/chats/direct",
            {"staff_id": "s1"},
            403,
            P + "DIRECT_CHAT_DISABLED",
            "DirectChatDisabledForClient",
        ),
        ("s1", "POST", "/chats/group", {"name": "Alone"}, 400, "M_INVALID_PARAM", "TooFewMembers"),
        (
            "s1",
            "POST",
            "/chats/group",
            {"name": "G", "client_ids": ["nobody"]},
            404,
            P + "UNKNOWN_CLIENT",
            None,
        ),
        (
            "s1",
            "POST",
            "/chats/group",
            {"name": "G", "staff_ids": ["nobody"]},
            404,
            P + "UNKNOWN_STAFF",
            None,
        ),
        (
            "s1",
            "POST",
            "/chats/group",
            {"name": "G", "client_ids": ["pending"]},
            403,
            P + "CLIENT_NOT_ACTIVATED",
            None,
        ),
        (
            "s1",
            "POST",
            f"/chats/{chat}/convert",
            {"name": "G", "client_ids": ["blocked"]},
            403,
            P + "NO_PORTAL_ACCESS",
            None,
        ),
        (
            "s1",
            "POST",
            f"/chats/{chat}/convert",
            {"name": "G", "staff_ids": ["nobody"]},
            404,
            P + "UNKNOWN_STAFF",
            None,
        ),
        (
            c1,
            "PUT",
            "/settings",
            {"autoresponder": {"enabled": False}},
            403,
            P + "STAFF_ONLY",
            "AutoresponderStaffOnly",
        ),
        (
            "s1",
            "PUT",
            "/settings",
            {"practice": {"clients_may_export": True}},
            403,
            P + "OWNER_ONLY",
            "SettingsOwnerOnly",
        ),
        (c1, "PUT", "/settings", {"practice": {}}, 403, P + "OWNER_ONLY", None),
        (c1, "PUT", closed, {"enabled": True}, 403, P + "STAFF_ONLY", "DirectChatAccessStaffOnly"),
        (
            None,
            "PUT",
            DIRECT_CHAT_ACCESS.path(practice, client_id="nobody"),
            {"enabled": True},
            404,
            "M_NOT_FOUND",
            "ClientNotFound",
        ),
    ]
    checks = Checks()

    async def refused(
        who: Any, method: str, path: str, body: Any, status: int, errcode: str, example: Any
    ) -> None:
        local, kind = who if isinstance(who, tuple) else (who, "staff")
        params = acting(practice, domain, local, kind) if local else None
        reply = await api.call(method, path, body, params=params)
        checks.expect(reply, method, path, status, errcode, label=f"{local} {body}")
        if example and reply.body != C.example(example, practice, domain):
            checks.problems.append(f"{path}: {reply.body} is not the documented {example}")

    for row in table:
        await refused(*row)

    async def sharing_refused(errcode: str, example: str) -> None:
        share = f"/chats/{chat}/share"
        await refused("s1", "POST", share, {"staff_id": "boss"}, 403, P + errcode, example)

    # Sharing needs the plan and the practice's consent.
    assert (
        await api.call("PUT", PRACTICE.path(practice), PRACTICE.body | {"plan": "solo"})
    ).status == 200
    await sharing_refused("PLAN_FORBIDS_SHARING", "PlanForbidsSharing")
    assert (await api.call("PUT", PRACTICE.path(practice), PRACTICE.body)).status == 200
    off = {"practice": {"allow_direct_chat_sharing": False}}
    reply = await api.call("PUT", "/settings", off, params=acting(practice, domain, "boss"))
    assert reply.status == 200, reply.body
    await sharing_refused("SHARING_DISABLED", "SharingDisabled")
    checks.done(len(table) + 2)


# -- the directory's own rules -----------------------------------------------------------------


async def test_unknown_practice_is_named_on_every_practice_route(
    api: ApiClient, practice_id: str
) -> None:
    checks = Checks()
    for endpoint in PRACTICE_ROUTES:
        path, params = endpoint.target(practice_id, api.homeserver.domain)
        reply = await api.call(endpoint.method, path, endpoint.body, params=params)
        checks.expect(reply, endpoint.method, path, 404, "ORG.PRACTICEBRIDGE.UNKNOWN_PRACTICE")
        if not checks.problems:
            expected = C.example("UnknownPractice", practice_id, api.homeserver.domain)
            assert reply.body == expected
    reply = await api.call("GET", "/audit", params={"practice_id": practice_id})
    checks.expect(reply, "GET", "/audit", 404, "ORG.PRACTICEBRIDGE.UNKNOWN_PRACTICE")
    checks.done(len(PRACTICE_ROUTES) + 1)


async def test_practice_plan_and_time_zone_must_be_known(api: ApiClient, practice_id: str) -> None:
    path = PRACTICE.path(practice_id)
    validator = C.request_validator("PUT", path)
    checks = Checks()
    reply = await api.call("PUT", path, PRACTICE.body | {"plan": "gold"})
    checks.expect(reply, "PUT", path, 400, "ORG.PRACTICEBRIDGE.UNKNOWN_PLAN", "plan")
    assert reply.body == C.example("UnknownPlan", practice_id, api.homeserver.domain)
    for zone in [
        "Mars/Olympus_Mons",
        "Europe",
        "europe/berlin",
        "Europe/Berlin ",
        "../../../etc/passwd",
        "/etc/localtime",
        "zone.tab",
        "UTC+2",
    ]:
        body = PRACTICE.body | {"timezone": zone}
        reply = await api.call("PUT", path, body)
        checks.expect(reply, "PUT", path, 400, "M_INVALID_PARAM", "timezone", label=zone)
    checks.done(9)
    # Nothing of the refused requests was stored: the practice is created only now.
    reply = await api.call("PUT", path, PRACTICE.body | {"plan": None})
    assert (reply.status, reply.body["created"], reply.body["plan"]) == (201, True, "solo")
    assert not list(validator.iter_errors(PRACTICE.body | {"plan": None}))


async def test_family_primary_must_be_an_active_primary_of_the_practice(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id, clients=("c-1042", "c2", "gone"))
    client = PUT_CLIENT.body or {}
    path = PUT_CLIENT.path(practice_id, client_id="c-1043")
    reply = await api.call("PUT", path, client | {"family_primary_id": "c-1042"})
    assert reply.status == 201, reply.body
    assert (await api.call("DELETE", f"/practices/{practice_id}/clients/gone")).status == 200

    checks = Checks()
    new = PUT_CLIENT.path(practice_id, client_id="new")
    for primary, status, errcode in [
        ("nobody", 400, "ORG.PRACTICEBRIDGE.UNKNOWN_FAMILY_PRIMARY"),
        ("gone", 400, "ORG.PRACTICEBRIDGE.UNKNOWN_FAMILY_PRIMARY"),
        ("new", 400, "M_INVALID_PARAM"),
        ("c-1043", 400, "ORG.PRACTICEBRIDGE.FAMILY_PRIMARY_IS_SUB_RECORD"),
    ]:
        reply = await api.call("PUT", new, client | {"family_primary_id": primary})
        checks.expect(reply, "PUT", new, status, errcode, "family_primary_id", label=primary)
    sub_record_reply = reply
    # A primary with family members cannot become a family member itself.
    path = PUT_CLIENT.path(practice_id, client_id="c-1042")
    reply = await api.call("PUT", path, client | {"family_primary_id": "c2"})
    checks.expect(
        reply, "PUT", path, 409, "ORG.PRACTICEBRIDGE.FAMILY_PRIMARY", "family_primary_id"
    )
    checks.done(5)
    domain = api.homeserver.domain
    assert sub_record_reply.body == C.example("FamilyPrimaryIsSubRecord", practice_id, domain)
    assert reply.body == C.example("FamilyPrimary", practice_id, domain)
    refused = await api.call("PUT", new, client | {"family_primary_id": "nobody"})
    assert refused.body == C.example("UnknownFamilyPrimary", practice_id, domain)


async def test_sessions_are_refused_with_the_reason(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id, clients=("c-1042", "gone"), staff=(("left", "owner"),))
    await _new_clients(
        api,
        practice_id,
        **{"c-1043": {"family_primary_id": "c-1042"}},
        pending={"activated": False},
        blocked={"portal_access": False},
    )
    assert (await api.call("DELETE", f"/practices/{practice_id}/clients/gone")).status == 200
    assert (await api.call("DELETE", f"/practices/{practice_id}/staff/left")).status == 200

    path = SESSIONS.path(practice_id)
    table = [
        ({"client_id": "c-1043"}, 403, "ORG.PRACTICEBRIDGE.SUB_RECORD", "SubRecord"),
        (
            {"client_id": "pending"},
            403,
            "ORG.PRACTICEBRIDGE.CLIENT_NOT_ACTIVATED",
            "ClientNotActivated",
        ),
        ({"client_id": "blocked"}, 403, "ORG.PRACTICEBRIDGE.NO_PORTAL_ACCESS", "NoPortalAccess"),
        ({"client_id": "gone"}, 403, "ORG.PRACTICEBRIDGE.CLIENT_REMOVED", "ClientRemoved"),
        ({"staff_id": "left"}, 403, "ORG.PRACTICEBRIDGE.STAFF_REMOVED", "StaffRemoved"),
        ({"client_id": "nobody"}, 404, "M_NOT_FOUND", "ClientNotFound"),
        ({"staff_id": "nobody"}, 404, "M_NOT_FOUND", "StaffNotFound"),
    ]
    checks = Checks()
    for request, status, errcode, example in table:
        reply = await api.call("POST", path, request)
        checks.expect(reply, "POST", path, status, errcode, label=str(request))
        if example and reply.body != C.example(example, practice_id, api.homeserver.domain):
            checks.problems.append(f"{request}: {reply.body} is not the documented {example}")
    checks.done(len(table))


async def test_removing_unknown_staff_or_clients_is_not_found(
    api: ApiClient, practice: str
) -> None:
    checks = Checks()
    for endpoint, ids, example in [
        (DELETE_STAFF, {"staff_id": "nobody"}, "StaffNotFound"),
        (DELETE_STAFF, {"staff_id": "c1"}, "StaffNotFound"),
        (DELETE_CLIENT, {"client_id": "nobody"}, "ClientNotFound"),
        (DELETE_CLIENT, {"client_id": "s1"}, "ClientNotFound"),
    ]:
        path = endpoint.path(practice, **ids)
        reply = await api.call(endpoint.method, path)
        checks.expect(reply, endpoint.method, path, 404, "M_NOT_FOUND", label=str(ids))
        if reply.body != C.example(example, practice, api.homeserver.domain):
            checks.problems.append(f"{path}: {reply.body} is not the documented {example}")
    checks.done(4)


async def test_unknown_paths_and_methods_are_unrecognized(api: ApiClient, practice: str) -> None:
    for method, path, status in [
        ("GET", "/nothing", 404),
        ("GET", "/practices", 404),
        ("PUT", "/practices/", 404),
        ("PUT", f"/practices/{practice}/pets/rex", 404),
        ("GET", f"/practices/{practice}", 405),
        ("POST", f"/practices/{practice}/staff/s1", 405),
        ("PATCH", f"/practices/{practice}/clients/c1", 405),
        ("DELETE", "/audit", 405),
        ("GET", "/chats/direct", 405),
        ("PATCH", "/chats/!abc123/pin", 405),
        ("POST", "/settings", 405),
        ("GET", f"/practices/{practice}/clients/c1/direct-chat", 405),
        ("PUT", "/chats/!abc123/archive", 404),
    ]:
        reply = await send(api, method, path, headers={"Authorization": f"Bearer {api.secret}"})
        assert isinstance(reply.body, dict), (method, path, reply.body)
        assert (reply.status, reply.errcode) == (status, "M_UNRECOGNIZED"), (method, path)
    async with api.session.get(api.base + f"/practices/{practice}") as resp:
        assert resp.status == 405
        assert "PUT" in resp.headers["Allow"]
