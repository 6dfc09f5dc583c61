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
from urllib.parse import quote

import pytest

from bridge.app import Bridge
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
    query: dict[str, str] = field(default_factory=dict)

    def path(self, practice: str, **ids: str) -> str:
        """The path for this practice, client c1 and staff s1 unless ``ids`` say otherwise."""
        defaults = {"practice_id": practice, "staff_id": "s1", "client_id": "c1"}
        return self.template.format(**(defaults | ids))

    def params(self, practice_id: str) -> dict[str, str]:
        return {k: v.format(practice_id=practice_id) for k, v in self.query.items()}

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


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

# Every authenticated operation of the API: a route added later belongs here too.
ENDPOINTS = [PRACTICE, PUT_STAFF, DELETE_STAFF, PUT_CLIENT, DELETE_CLIENT, SESSIONS, AUDIT]
BODY_ENDPOINTS = [e for e in ENDPOINTS if e.body is not None]
PRACTICE_ROUTES = [e for e in ENDPOINTS if "{practice_id}" in e.template and e is not PRACTICE]


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
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.config["appservice.port"])
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
    """A practice with an owner, a practitioner and a client."""
    await api.setup_practice(
        practice_id, staff=(("boss", "owner"), ("s1", "practitioner")), clients=("c1",)
    )
    yield practice_id


def test_the_tables_cover_every_documented_operation() -> None:
    documented = {
        f"{method} {template}"
        for method, template, op in C.operations()
        if op.get("security", C.doc["security"]) != []
    }
    assert {e.name for e in ENDPOINTS} == documented


# -- authentication --------------------------------------------------------------------------


async def test_missing_or_malformed_authorization_is_refused_everywhere(
    api: ApiClient, practice: str
) -> None:
    checks = Checks()
    for endpoint in ENDPOINTS:
        path = endpoint.path(practice)
        for header in (None, f"Basic {api.secret}", "Bearer", "Bearer    ", f"Token {api.secret}"):
            reply = await send(
                api,
                endpoint.method,
                path,
                headers={"Authorization": header} if header is not None else {},
                data=b'{"name": "x"}',
                params=endpoint.params(practice),
            )
            checks.expect(reply, endpoint.method, path, 401, "M_MISSING_TOKEN", label=header)
    checks.done(len(ENDPOINTS) * 5)
    refused = await api.call("GET", "/audit", auth=False, params={"practice_id": practice})
    assert refused.body == C.example("MissingToken", practice, api.homeserver.domain)


async def test_a_wrong_secret_is_an_unknown_token_everywhere(
    api: ApiClient, bridge: Bridge, practice: str
) -> None:
    checks = Checks()
    for endpoint in ENDPOINTS:
        path = endpoint.path(practice)
        for token in ("wrong-secret", api.secret + "x", api.secret[:-1], "t" * 4000):
            reply = await api.call(
                endpoint.method,
                path,
                endpoint.body,
                token=token,
                params=endpoint.params(practice),
            )
            checks.expect(reply, endpoint.method, path, 401, "M_UNKNOWN_TOKEN", label=token[:12])
        # Bytes that are not ASCII, or not even UTF-8, are no token either.
        target = bridge.config["provisioning.prefix"] + path
        if endpoint.query:
            target += f"?practice_id={practice}"
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
            params = endpoint.params(practice) | {"user_id": user_id}
            reply = await api.call(endpoint.method, path, endpoint.body, params=params)
            checks.expect(
                reply, endpoint.method, path, 400, "M_INVALID_PARAM", "user_id", label=user_id
            )
    checks.done(len(ENDPOINTS) * len(bad_users))


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
    path = endpoint.path(practice)
    checks = Checks()
    for raw in NOT_JSON:
        reply = await api.call(endpoint.method, path, raw=raw)
        checks.expect(reply, endpoint.method, path, 400, "M_NOT_JSON", label=repr(raw[:20]))
    for raw in NOT_AN_OBJECT:
        reply = await api.call(endpoint.method, path, raw=raw)
        checks.expect(reply, endpoint.method, path, 400, "M_BAD_JSON", label=repr(raw[:20]))
    checks.done(len(NOT_JSON) + len(NOT_AN_OBJECT))
    domain = api.homeserver.domain
    reply = await api.call(endpoint.method, path, raw=b"{")
    assert reply.body == C.example("NotJson", practice, domain)
    reply = await api.call(endpoint.method, path, raw=b"[]")
    assert reply.body == C.example("BadJson", practice, domain)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0.01)  # let each chunk arrive on its own


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.name)
async def test_bodies_over_64_kib_are_refused(
    api: ApiClient, practice: str, endpoint: Endpoint
) -> None:
    assert endpoint.body is not None
    path = endpoint.path(practice)
    auth = {"Authorization": f"Bearer {api.secret}", "Content-Type": "application/json"}
    huge = json.dumps(endpoint.body | {"padding": "x" * (64 * 1024)}).encode()
    checks = Checks()
    # With a Content-Length, and streamed in chunks without one.
    reply = await send(api, endpoint.method, path, headers=auth, data=huge)
    checks.expect(reply, endpoint.method, path, 413, "M_TOO_LARGE", label="content-length")
    reply = await send(api, endpoint.method, path, headers=auth, data=_chunks(huge, 16 * 1024))
    checks.expect(reply, endpoint.method, path, 413, "M_TOO_LARGE", label="chunked")
    checks.done(2)
    assert reply.body == C.example("TooLarge", practice, api.homeserver.domain)

    # Just under the limit, arriving in pieces, is read whole and accepted.
    fits = json.dumps(endpoint.body | {"padding": "x" * (60 * 1024)}).encode()
    reply = await send(api, endpoint.method, path, headers=auth, data=_chunks(fits, 8 * 1024))
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
}


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.name)
async def test_each_field_refuses_wrong_types_missing_values_and_bad_text(
    api: ApiClient, practice: str, endpoint: Endpoint
) -> None:
    assert endpoint.body is not None
    path = endpoint.path(practice)
    validator = C.request_validator(endpoint.method, path)
    checks = Checks()
    for name, cases in FIELDS[endpoint.name].items():
        base = {name: "s1"} if endpoint is SESSIONS and name == "staff_id" else endpoint.body
        assert not list(validator.iter_errors(base)), base
        for case in cases:
            body = {k: v for k, v in base.items() if k != name}
            if case.value is not MISSING:
                body[name] = case.value
            label = f"{name}={case.value!r:.40}"
            if case.schema_rejects and not list(validator.iter_errors(body)):
                checks.problems.append(f"{label}: the documented schema accepts {body!r}")
            reply = await api.call(endpoint.method, path, body)
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
    checks.done(10 * len(BAD_IDS))


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


# -- the directory's own rules -----------------------------------------------------------------


async def test_unknown_practice_is_named_on_every_practice_route(
    api: ApiClient, practice_id: str
) -> None:
    checks = Checks()
    for endpoint in PRACTICE_ROUTES:
        path = endpoint.path(practice_id)
        reply = await api.call(
            endpoint.method, path, endpoint.body, params=endpoint.params(practice_id)
        )
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
    body = PUT_CLIENT.body or {}
    for client_id, changes in [
        ("c-1043", {"family_primary_id": "c-1042"}),
        ("pending", {"activated": False}),
        ("blocked", {"portal_access": False}),
    ]:
        path = PUT_CLIENT.path(practice_id, client_id=client_id)
        assert (await api.call("PUT", path, body | changes)).status == 201
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
    ]:
        reply = await send(api, method, path, headers={"Authorization": f"Bearer {api.secret}"})
        assert isinstance(reply.body, dict), (method, path, reply.body)
        assert (reply.status, reply.errcode) == (status, "M_UNRECOGNIZED"), (method, path)
    async with api.session.get(api.base + f"/practices/{practice}") as resp:
        assert resp.status == 405
        assert "PUT" in resp.headers["Allow"]
