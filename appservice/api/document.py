"""The OpenAPI 3.1 document of the provisioning API, written from the route table.

Schemas come from the models (bodies.py, answers.py, the settings model), error responses from
each route's auth, path ids, query, body and listed refusals (refusals.py), examples of
exchanges from examples.json. ``make openapi`` writes ``appservice/api/openapi.json``; a test
fails while the checked-in file differs from what this writes.

    python -m appservice.api.document [--check]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from bridge.fields import ChatId, Id

from .answers import Error
from .refusals import REFUSALS
from .routes import ROUTES
from .routing import Answer, Auth, Route
from .server import OPENAPI_PATH

EXAMPLES_PATH = Path(__file__).with_name("examples.json")
DEFAULT_PREFIX = "/_matrix/provision/v1"
_SCHEMAS = "#/components/schemas/"
_ERROR = {"$ref": _SCHEMAS + "Error"}

INFO = {
    "title": "practice-bridge provisioning API",
    "version": "1",
    "description": (
        "The provisioning API of practice-bridge: the portal backend syncs the practice "
        "directory and mints Matrix sessions; portal users call it with their own Matrix "
        "session. JSON in and out; docs/api.md explains it.\n\n"
        "**Authentication.** `Authorization: Bearer <token>` on every route but this document. "
        "The token is either the bridge's shared secret (`sharedSecret`: the portal backend, "
        "which may act for a portal user with `?user_id=`) or a Matrix access token of a "
        "portal user (`matrixToken`). Routes marked with `sharedSecret` only refuse Matrix "
        "tokens with 403 `M_FORBIDDEN`. **Acting as a user.** The chat and settings routes act "
        "as a portal user: with a Matrix token, its own user; with the shared secret, the user "
        "named by `user_id` (required there). A user who is not a team member or client with "
        "access is refused with 403 (`UNKNOWN_USER`, `STAFF_REMOVED`, `CLIENT_REMOVED`, "
        "`CLIENT_NOT_ACTIVATED`, `NO_PORTAL_ACCESS`, `SUB_RECORD`).\n\n"
        '**Errors.** Every error is a JSON object `{"errcode": "...", "error": "<a '
        'sentence a client can show>", ...}`: Matrix `M_*` codes where one fits, '
        "`ORG.PRACTICEBRIDGE.*` otherwise, sometimes with more fields (`param` names the field "
        "at fault). Each response below lists the errcodes it can carry. An unknown path "
        "answers 404 and a known path with the wrong method 405, both with `M_UNRECOGNIZED`. "
        "A request body is at most 64 KiB (413 `M_TOO_LARGE`). When the homeserver fails the "
        "answer is 502 `M_UNKNOWN`: retry."
    ),
}
TAGS = {
    "directory": "Practices, team members and clients (portal backend only).",
    "sessions": "Matrix sessions for portal users (portal backend only).",
    "chats": "Chats as a portal user: contacts, the chat list, starting, sharing, converting, "
    "pinning, hiding and deleting chats. Every chat is a Matrix room; see docs/chats.md.",
    "settings": "Messaging preferences, the practice's rules, and per-client direct chat access.",
    "audit": "The practice's audit log.",
    "meta": "About this API.",
}
SECURITY_SCHEMES = {
    "sharedSecret": {
        "type": "http",
        "scheme": "bearer",
        "description": "The portal backend: `Authorization: Bearer <provisioning.shared_secret>`. "
        "Compared in constant time. The backend may act for a portal user by adding the "
        "`user_id` query parameter to any request.",
    },
    "matrixToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "Matrix access token",
        "description": "A portal user (portal frontend): `Authorization: Bearer <access_token>` "
        "of a session minted by `POST /practices/{practice_id}/sessions`. Checked against the "
        "homeserver (`/account/whoami`) and cached for `provisioning.token_cache_seconds`. "
        "Only accounts in the bridge's namespace are accepted.",
    },
}
ACT_AS_USER = {
    "name": "user_id",
    "in": "query",
    "required": False,
    "description": "Shared secret only: act for this portal user (their Matrix user id). The "
    "audit log names the caller `backend:<user_id>`. With a Matrix token it may only repeat "
    "the token's own user.",
    "schema": {"type": "string", "pattern": "^@[^:]+:.+$"},
}
PATH_PARAMS = {
    "practice_id": (Id, "The practice's id in the portal.", "sunrise-wellness"),
    "staff_id": (Id, "The team member's id in the portal.", "dr-lee"),
    "client_id": (Id, "The client's id in the portal.", "c-1042"),
    "chat_id": (
        ChatId,
        "The chat: its Matrix room id (room version 12: `!` and 43 URL-safe base64 "
        "characters). Percent-encode it in the path (`!` may stay).",
        "!29rw64RM6bkXyjfunyXXzX8D2jl6XZLw7Nyf1DkQAhI",
    ),
}
# What every route of an auth kind may be refused with, besides its own refusals.
AUTH_REFUSALS = {
    Auth.NONE: (),
    Auth.BACKEND: ("BackendOnly",),
    Auth.CALLER: (),
    Auth.USER: (
        "MissingUserId",
        "ForbiddenCaller",
        "UnknownUser",
        "StaffRemoved",
        "ClientRemoved",
        "ClientNotActivated",
        "NoPortalAccess",
        "SubRecord",
    ),
}
AUTHENTICATED = (
    "MissingToken",
    "UnknownToken",
    "InvalidUserId",
    "UnknownParameter",
    "HomeserverFailed",
)
STATUS = {
    400: "The request is malformed, or names something in a way the bridge refuses; `param` "
    "names the field or parameter at fault.",
    401: "No token, or a token that is neither the shared secret nor a valid Matrix access token.",
    403: "The caller may not do this.",
    404: "Not found (or not visible to the caller).",
    409: "In conflict with what exists.",
    413: "The body is larger than 64 KiB.",
    502: "The homeserver failed; retry later.",
    503: "The bridge cannot do this right now (its database cannot be used; for `/health`, a "
    "check fails); retry later.",
    504: "The homeserver is not done yet; retry later.",
}
_USER_ROUTE = (
    " With the shared secret the portal backend must name the user with `user_id` "
    "(`400 M_MISSING_PARAM` otherwise)."
)


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def build() -> dict[str, Any]:
    examples = json.loads(EXAMPLES_PATH.read_text())
    schemas = _schemas()
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for route in ROUTES:
        paths[route.path][route.method.lower()] = _operation(route, examples)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": [{"url": DEFAULT_PREFIX}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "security": [{"sharedSecret": []}, {"matrixToken": []}],
        "paths": dict(paths),
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "parameters": {"ActAsUser": ACT_AS_USER},
            "schemas": schemas,
            "examples": {
                name: {
                    "summary": f"{refusal.error.errcode}: {refusal.summary}",
                    "value": refusal.error.to_json(),
                }
                for name, refusal in REFUSALS.items()
            },
        },
    }


def _operation(route: Route, examples: dict[str, Any]) -> dict[str, Any]:
    mine = examples.get(route.operation_id, {})
    description = route.description + (_USER_ROUTE if route.auth is Auth.USER else "")
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "tags": [route.tag],
        "summary": route.summary,
        "description": description,
    }
    if route.auth is Auth.NONE:
        op["security"] = []
    elif route.auth is Auth.BACKEND:
        op["security"] = [{"sharedSecret": []}]
    op["parameters"] = _parameters(route)
    if route.body is not None:
        content: dict[str, Any] = {"schema": _ref(route.body)}
        if "request" in mine:
            content["examples"] = mine["request"]
        op["requestBody"] = {"required": True, "content": {"application/json": content}}
    op["responses"] = {
        **{
            str(status): _answer(answer, mine.get(str(status)))
            for status, answer in route.answers.items()
        },
        **_refusals(route),
    }
    return op


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in route.path_params:
        kind, description, example = PATH_PARAMS[name]
        schema = TypeAdapter(kind).json_schema(schema_generator=_Schema)
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": schema,
                "example": example,
            }
        )
    if route.query is not None:
        schema = route.query.model_json_schema(by_alias=True, schema_generator=_Schema)
        required = set(schema.get("required", ()))
        for name, prop in _clean(schema)["properties"].items():
            description = prop.pop("description", "")
            options = prop.pop("anyOf", None)
            if options:  # a query parameter is a string or left out: never null
                (option,) = [o for o in options if o != {"type": "null"}]
                prop = {**option, **{k: v for k, v in prop.items() if v is not None}}
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "description": description,
                    "schema": prop,
                }
            )
    if route.auth is not Auth.NONE:
        params.append({"$ref": "#/components/parameters/ActAsUser"})
    return params


def _answer(answer: Answer, examples: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": answer.description}
    if answer.shape is not None:
        content: dict[str, Any] = {"schema": _ref(answer.shape)}
        if examples:
            content["examples"] = examples
        body["content"] = {"application/json": content}
    elif answer.files:
        binary = {"schema": {"type": "string", "format": "binary"}}
        body["content"] = {media: binary for media in answer.files}
    return body


def _refusals(route: Route) -> dict[str, Any]:
    names: list[str] = []
    if route.auth is not Auth.NONE:
        names += [*AUTHENTICATED, *AUTH_REFUSALS[route.auth]]
    params = route.path_params
    if any(p != "chat_id" for p in params) or route.query is not None:
        names.append("InvalidParam")
    if "chat_id" in params:
        names.append("InvalidChatId")
    if route.body is not None:
        names += ["NotJson", "BadJson", "TooLarge", "InvalidParam"]
        if route.body.model_json_schema().get("required"):
            names.append("MissingParam")
    names += route.errors
    if route.auth is not Auth.NONE:
        names.append("StorageUnavailable")
    by_status: dict[int, dict[str, Any]] = defaultdict(dict)
    for name in dict.fromkeys(names):
        by_status[REFUSALS[name].error.http_status][name] = {
            "$ref": f"#/components/examples/{name}"
        }
    return {
        str(status): {
            "description": STATUS[status],
            "content": {"application/json": {"schema": _ERROR, "examples": examples}},
        }
        for status, examples in sorted(by_status.items())
    }


def _models() -> Iterable[tuple[type[BaseModel], JsonSchemaMode]]:
    for route in ROUTES:
        if route.body is not None:
            yield route.body, "validation"
        for answer in route.answers.values():
            if answer.shape is not None:
                yield answer.shape, "serialization"
    yield Error, "serialization"


def _schemas() -> dict[str, Any]:
    models = list(dict.fromkeys(_models()))
    _, defs = models_json_schema(
        models, ref_template=_SCHEMAS + "{model}", schema_generator=_Schema
    )
    return {_name(name): _clean(schema) for name, schema in sorted(defs["$defs"].items())}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _SCHEMAS + model.__name__}


def _name(name: str) -> str:
    return name.removesuffix("-Output").replace("-Input", "Input")


def _clean(schema: Any) -> Any:
    """Without pydantic's titles, with one-line descriptions and renamed references."""
    if isinstance(schema, list):
        return [_clean(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None and {"type": "null"} not in schema.get("anyOf", ()):
            continue  # a field that is left out rather than null
        if key == "description" and isinstance(value, str):
            value = " ".join(value.split())
        elif key == "$ref" and isinstance(value, str):
            value = _SCHEMAS + _name(value.removeprefix(_SCHEMAS))
        elif key not in ("examples", "default", "const", "enum"):
            value = _clean(value)
        out[key] = value
    return out


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OPENAPI_PATH.read_text() != text:
            print(f"{OPENAPI_PATH} is out of date: run make openapi", file=sys.stderr)
            return 1
        return 0
    OPENAPI_PATH.write_text(text)
    print(f"wrote {OPENAPI_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
