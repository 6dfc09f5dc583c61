"""The OpenAPI document is served as shipped, is valid, and describes exactly the API that runs.

Besides the checks here, :class:`Contract` is what the other API tests use to hold every answer
they get against the document: a status the operation lists, a body its schema accepts, and for
an error an errcode the document names for that status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any
from urllib.parse import quote

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from appservice.api.document import render
from appservice.api.server import OPENAPI_PATH
from bridge.app import Bridge
from tests.clients import ApiClient, Reply

METHODS = ("get", "put", "post", "delete", "patch")
DEFAULT_PREFIX = "/_matrix/provision/v1"
# The practice and server the document's examples use; tests swap in their own.
EXAMPLE_PRACTICE = "sunrise-wellness"
EXAMPLE_DOMAIN = "example.org"
# Fields whose values differ on every run: only their presence and type are compared.
VOLATILE = frozenset(
    {
        "access_token",
        "device_id",
        "homeserver",
        "id",
        "ts",
        "last_message_ts",
        "last_read_ts",
        # How far the background propagation of a practice's rules has come.
        "practice_applied",
        "practice_pending_chats",
    }
)


@cache
def load_document() -> dict[str, Any]:
    with open(OPENAPI_PATH) as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def registered_routes(bridge: Bridge) -> set[tuple[str, str]]:
    """(METHOD, path template under the prefix) of every route on the API's aiohttp app."""
    prefix = bridge.config.provisioning.prefix
    routes = set()
    for route in bridge.api.router.routes():
        if route.method == "HEAD":
            continue
        assert route.resource is not None
        path = route.resource.canonical
        # Once mounted, the sub-app's resources carry the prefix.
        assert path.startswith(prefix), path
        routes.add((route.method, path[len(prefix) :]))
    return routes


class Contract:
    """The OpenAPI document as a checker of real requests and answers."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._templates = [
            (re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in doc["paths"]
        ]

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for template, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    yield method.upper(), template, item[method]

    def template(self, path: str) -> str:
        path = path.split("?", 1)[0]
        found = [t for regex, t in self._templates if regex.match(path)]
        # A literal segment beats a placeholder, as in aiohttp's router.
        assert found, f"{path} matches no documented path"
        return min(found, key=lambda t: t.count("{"))

    def operation(self, method: str, path: str) -> dict[str, Any]:
        item = self.doc["paths"][self.template(path)]
        assert method.lower() in item, f"{method} {path} is not documented"
        op: dict[str, Any] = item[method.lower()]
        return op

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def validator(self, schema: dict[str, Any]) -> OAS31Validator:
        return OAS31Validator({"allOf": [schema], "components": self.doc["components"]})

    def request_validator(self, method: str, path: str) -> OAS31Validator:
        body = self.resolve(self.operation(method, path)["requestBody"])
        return self.validator(body["content"]["application/json"]["schema"])

    def errcodes(self, response: dict[str, Any]) -> set[str]:
        examples = response["content"]["application/json"].get("examples", {})
        return {self.resolve(e)["value"]["errcode"] for e in examples.values()}

    def example(self, name: str, practice_id: str, domain: str) -> Any:
        """A named example of ``components/examples``, told in the test's practice and server."""
        value = self.resolve({"$ref": f"#/components/examples/{name}"})["value"]
        return localize(value, practice_id, domain)

    def check(self, method: str, path: str, reply: Reply) -> None:
        """The answer is one the document promises for this operation."""
        where = f"{method} {path} -> {reply.status} {reply.body!r}"
        responses = self.operation(method, path)["responses"]
        assert str(reply.status) in responses, f"status not documented: {where}"
        response = self.resolve(responses[str(reply.status)])
        if "content" not in response:
            assert reply.body in ("", None), f"a body where none is documented: {where}"
            return
        content = response["content"]["application/json"]
        errors = sorted(
            e.message for e in self.validator(content["schema"]).iter_errors(reply.body)
        )
        assert not errors, f"body does not match the schema ({errors}): {where}"
        if reply.status >= 400:
            documented = self.errcodes(response)
            assert reply.body["errcode"] in documented, (
                f"errcode not documented (documented: {sorted(documented)}): {where}"
            )


def localize(
    value: Any, practice_id: str, domain: str, chats: dict[str, str] | None = None
) -> Any:
    """The example told in the test's practice and server, with the test's own chat ids for
    the example's (``chats`` maps one to the other)."""
    text = json.dumps(value).replace(EXAMPLE_PRACTICE, practice_id)
    for example_id, chat_id in (chats or {}).items():
        text = text.replace(json.dumps(example_id), json.dumps(chat_id))
    return json.loads(text.replace(f":{EXAMPLE_DOMAIN}", f":{domain}"))


def assert_same_shape(
    expected: Any, actual: Any, where: str = "$", unordered: frozenset[str] = frozenset()
) -> None:
    """Equal, except that volatile fields only need to be there with the same type, and lists
    under an ``unordered`` key may come in any order."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), (where, actual)
        for key, value in expected.items():
            if key in VOLATILE:
                assert type(actual[key]) is type(value), (f"{where}.{key}", actual[key])
            elif key in unordered and isinstance(value, list) and isinstance(actual[key], list):
                assert_same_shape(
                    sorted(value, key=_canonical),
                    sorted(actual[key], key=_canonical),
                    f"{where}.{key}",
                    unordered,
                )
            else:
                assert_same_shape(value, actual[key], f"{where}.{key}", unordered)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), (where, actual)
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same_shape(e, a, f"{where}[{i}]", unordered)
    else:
        assert expected == actual, (where, expected, actual)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def contract() -> Contract:
    return Contract(load_document())


# -- the document itself -------------------------------------------------------------------


async def test_served_document_is_the_shipped_file(api: ApiClient, bridge: Bridge) -> None:
    r = await api.call("GET", "/openapi.json", auth=False)
    assert r.status == 200
    prefix = bridge.config.provisioning.prefix
    assert r.body == load_document() | {"servers": [{"url": prefix}]}
    assert load_document()["servers"] == [{"url": DEFAULT_PREFIX}]


async def test_served_document_is_valid_openapi_3_1(api: ApiClient) -> None:
    r = await api.call("GET", "/openapi.json", auth=False)
    assert r.body["openapi"].startswith("3.1.")
    validate_spec(r.body)


async def test_documented_operations_are_exactly_the_registered_routes(bridge: Bridge) -> None:
    documented = {(method, template) for method, template, _ in contract().operations()}
    registered = registered_routes(bridge)
    assert registered, "no routes found on the API app"

    def listing(routes: set[tuple[str, str]]) -> str:
        return "".join(f"\n  {method} {path}" for method, path in sorted(routes))

    missing, stale = registered - documented, documented - registered
    assert not missing, "routes missing from appservice/api/openapi.json:" + listing(missing)
    assert not stale, "documented routes the API does not register:" + listing(stale)


def test_every_operation_documents_auth_bodies_and_errors() -> None:
    """Conventions that keep the document uniform as routes are added."""
    c = contract()
    ids = [op["operationId"] for _, _, op in c.operations()]
    assert len(ids) == len(set(ids))
    for method, template, op in c.operations():
        where = f"{method} {template}"
        assert op.get("summary") and op.get("tags"), where
        statuses = set(op["responses"])
        assert any(s.startswith("2") for s in statuses), where
        if op.get("security", c.doc["security"]) != []:
            assert {"401", "502"} <= statuses, where
            names = {c.resolve(p)["name"] for p in op.get("parameters", [])}
            assert "user_id" in names, f"{where}: add #/components/parameters/ActAsUser"
        if "requestBody" in op:
            assert {"400", "413"} <= statuses, where
            assert "NotJson" in json.dumps(op["responses"]["400"]), where
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                content = c.resolve(response)["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, where
                assert c.errcodes(c.resolve(response)), f"{where} {status}: name the errcodes"


def test_examples_match_their_schemas() -> None:
    c = contract()
    checked = 0
    for method, template, op in c.operations():
        media = []
        if "requestBody" in op:
            media.append(c.resolve(op["requestBody"])["content"]["application/json"])
        for response in op["responses"].values():
            media.extend(c.resolve(response).get("content", {}).values())
        for content in media:
            validator = c.validator(content["schema"])
            for name, example in content.get("examples", {}).items():
                value = c.resolve(example)["value"]
                errors = [e.message for e in validator.iter_errors(value)]
                assert not errors, (method, template, name, errors)
                checked += 1
    assert checked > 40


# -- the document's examples are real exchanges ------------------------------------------


async def test_documented_examples_are_what_the_api_answers(
    api: ApiClient, practice_id: str
) -> None:
    c = contract()
    domain = api.homeserver.domain

    def request_example(method: str, template: str, name: str) -> Any:
        op = c.doc["paths"][template][method]
        value = op["requestBody"]["content"]["application/json"]["examples"][name]["value"]
        return localize(value, practice_id, domain)

    def response_example(method: str, template: str, status: int, name: str) -> Any:
        response = c.resolve(c.doc["paths"][template][method]["responses"][str(status)])
        value = response["content"]["application/json"]["examples"][name]["value"]
        return localize(value, practice_id, domain)

    async def exchange(
        method: str,
        template: str,
        status: int,
        request: str | None,
        response: str | None,
        **ids: str,
    ) -> Reply:
        path = template.format(practice_id=practice_id, **ids)
        body = request_example(method.lower(), template, request) if request else None
        r = await api.call(method, path, body)
        assert r.status == status, (method, path, r.body)
        c.check(method, path, r)
        if response:
            expected = response_example(method.lower(), template, status, response)
            assert_same_shape(expected, r.body)
        return r

    practice = "/practices/{practice_id}"
    staff = practice + "/staff/{staff_id}"
    client = practice + "/clients/{client_id}"
    sessions = practice + "/sessions"
    await exchange("PUT", practice, 201, "practice", "created")
    await exchange("PUT", practice, 200, "practice", "updated")
    await exchange("PUT", staff, 201, "owner", "created", staff_id="dr-lee")
    await exchange("PUT", staff, 200, "owner", "updated", staff_id="dr-lee")
    await exchange("PUT", client, 201, "primary", "primary", client_id="c-1042")
    grant = await exchange("POST", sessions, 201, "client", "client")
    assert grant.body["homeserver"] == api.homeserver.url

    r = await api.call("GET", "/audit", params={"practice_id": practice_id, "limit": "2"})
    c.check("GET", "/audit", r)
    assert_same_shape(response_example("get", "/audit", 200, "page"), r.body)

    await exchange("POST", sessions, 201, "staff", None)
    await exchange("PUT", client, 200, "primary", "updated", client_id="c-1042")
    await exchange("PUT", client, 201, "family_member", "family_member", client_id="c-1043")
    await exchange("DELETE", client, 200, None, "removed", client_id="c-1042")
    await exchange("DELETE", staff, 200, None, "removed", staff_id="dr-lee")


async def test_documented_chat_and_settings_examples_are_what_the_api_answers(
    api: ApiClient, practice_id: str
) -> None:
    """The flows of docs/chats.md, told with the document's examples: Anna (practitioner) and
    Tom (team member) with the client Maria and her son Leo, a family member."""
    c = contract()
    domain = api.homeserver.domain
    chats: dict[str, str] = {}  # the example's chat ids -> this run's
    users: dict[str, str] = {}

    def example(node: dict[str, Any], name: str) -> Any:
        return c.resolve(node["content"]["application/json"]["examples"][name])["value"]

    async def put(kind: str, local_id: str, body: dict[str, Any]) -> None:
        r = await api.call("PUT", f"/practices/{practice_id}/{kind}/{local_id}", body)
        assert r.status == 201, r.body
        if r.body["user_id"]:
            users[local_id] = r.body["user_id"]

    async def exchange(
        who: str | None,
        method: str,
        template: str,
        status: int,
        request: str | None,
        response: str | None,
        chat: str | None = None,
        unordered: frozenset[str] = frozenset(),
        **ids: str,
    ) -> Reply:
        op = c.doc["paths"][template][method.lower()]
        body = None
        if request:
            body = localize(example(op["requestBody"], request), practice_id, domain, chats)
        if chat is not None:
            ids["chat_id"] = quote(chats[chat], safe="!")
        path = template.format(practice_id=practice_id, **ids)
        params = {"user_id": users[who]} if who else None
        r = await api.call(method, path, body, params=params)
        assert r.status == status, (method, path, r.body)
        c.check(method, path, r)
        if response:
            value = example(c.resolve(op["responses"][str(status)]), response)
            if isinstance(value, dict) and value.get("chat_id") not in (None, *chats):
                chats[value["chat_id"]] = r.body["chat_id"]  # a chat this request created
            expected = localize(value, practice_id, domain, chats)
            assert_same_shape(expected, r.body, unordered=unordered)
        return r

    r = await api.call(
        "PUT",
        f"/practices/{practice_id}",
        {"name": "Sunrise Wellness", "plan": "team", "timezone": "Europe/Berlin"},
    )
    assert r.status == 201, r.body
    for staff_id, name, role in [("anna", "Anna", "practitioner"), ("tom", "Tom", "team_member")]:
        await put(
            "staff", staff_id, {"name": name, "email": f"{staff_id}@example.com", "role": role}
        )
    client = {"email": "maria@example.com", "activated": True, "portal_access": True}
    await put("clients", "maria", client | {"name": "Maria", "family_primary_id": None})
    await put("clients", "leo", client | {"name": "Leo", "family_primary_id": "maria"})

    direct, chat = "/chats/direct", "/chats/{chat_id}"
    await exchange("anna", "POST", direct, 201, "staff", "created")
    await exchange("anna", "POST", direct, 200, "staff", "existing")
    await exchange("anna", "POST", direct, 201, "family_member", "family_member")
    maria_chat = "!29rw64RM6bkXyjfunyXXzX8D2jl6XZLw7Nyf1DkQAhI"
    await exchange("anna", "POST", chat + "/share", 200, "share", "shared", maria_chat)
    await exchange("tom", "POST", direct, 201, "create_new", "create_new")
    await exchange("tom", "POST", direct, 409, "staff", "ChooseChat", unordered={"candidates"})
    await exchange("tom", "POST", direct, 200, "choose", "existing")
    await exchange("maria", "POST", direct, 200, "client", "existing")
    await exchange("anna", "POST", direct + "/bulk", 200, "clients", "results")

    await exchange("anna", "PUT", chat + "/pin", 200, None, "pinned", maria_chat)
    await exchange("maria", "DELETE", chat + "/unread", 200, None, "read", maria_chat)
    await exchange("anna", "GET", "/chats", 200, None, "staff")
    await exchange("maria", "GET", "/contacts", 200, None, "client", unordered={"chats"})
    await exchange("anna", "PUT", chat + "/hide", 200, None, "hidden", maria_chat)
    await exchange("anna", "DELETE", chat + "/hide", 200, None, "shown", maria_chat)
    await exchange("anna", "PUT", chat + "/unread", 200, None, "unread", maria_chat)
    await exchange("anna", "DELETE", chat + "/pin", 200, None, "unpinned", maria_chat)

    await exchange("anna", "POST", "/chats/group", 201, "group", "group")
    toms_chat = "!UrjWapACn28XWuCwxxidaRR7wfQy3O8rUD9trcC5Fi8"
    await exchange("tom", "POST", chat + "/convert", 200, "convert", "converted", toms_chat)
    leos_chat = "!MtfTqxFuk0B8eONUB5527RBuJ80dkHfU3vOH9PLPMqs"
    await exchange("anna", "DELETE", chat, 200, None, "deleted", leos_chat)

    await exchange("anna", "PUT", "/settings", 200, "staff", "staff")
    await exchange("maria", "GET", "/settings", 200, None, "client")
    await put(
        "staff", "dr-lee", {"name": "Dr. Mina Lee", "email": "lee@example.com", "role": "owner"}
    )
    await exchange("dr-lee", "PUT", "/settings", 200, "owner", "owner")

    access = "/practices/{practice_id}/clients/{client_id}/direct-chat"
    await exchange(None, "PUT", access, 200, "off", "off", client_id="maria")
    await exchange("anna", "PUT", access, 200, "on", "on", client_id="maria")


def test_checked_in_document_is_what_the_route_table_writes() -> None:
    """appservice/api/openapi.json is written by ``make openapi`` from the route table, the
    models and examples.json; edit those, never the file."""
    assert OPENAPI_PATH.read_text() == render(), "run: make openapi"
