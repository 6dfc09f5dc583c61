"""How a route of the table becomes an aiohttp handler.

Every request goes the same way before its handler runs: authentication as the route's
:class:`Auth` says (for a user route, the portal user it acts as), then the path ids, the query
and the body, each parsed with the route's models. The handler gets a :class:`Call` with all of
it; whatever it raises as a :class:`~bridge.errors.PracticeError` is answered by the error
middleware.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from functools import cached_property, partial
from typing import Any, Generic, TypeVar, get_args, get_type_hints

from aiohttp import web
from mautrix.types import UserID
from pydantic import BaseModel

from bridge.chats.actors import Actor, resolve_actor
from bridge.directory import DirectoryStore
from bridge.errors import PracticeError, invalid_param
from bridge.fields import check_chat_id, check_id, parse

from .auth import Authenticator, Caller
from .http import read_json

B = TypeVar("B")
Q = TypeVar("Q")
_PARAM_RE = re.compile(r"\{(\w+)\}")
# Where a request keeps its route's operation id, for middlewares (metrics, logs).
OPERATION = web.RequestKey("operation_id", str)
# How each path parameter is checked; the document says the same (see document.py).
PATH_CHECKS: dict[str, Callable[[str, Any], str]] = {
    "practice_id": check_id,
    "staff_id": check_id,
    "client_id": check_id,
    "chat_id": check_chat_id,
}


@dataclass(frozen=True)
class Call(Generic[B, Q]):
    """A request that passed the checks at the door."""

    request: web.Request
    caller: Caller
    path: Mapping[str, str]
    query: Q
    body: B
    actor: Actor | None = None

    @property
    def user(self) -> Actor:
        """The portal user a user route acts as."""
        assert self.actor is not None, "only user routes act as a user"
        return self.actor


Handler = Callable[[Any, Call[Any, Any]], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Answer:
    """A documented success: the shape of its JSON body (None: a file, see ``files``)."""

    description: str
    shape: type[BaseModel] | None = None
    examples: str | None = None
    files: Sequence[str] = ()


class Auth(Enum):
    """Who may call a route."""

    # No token (the API document).
    NONE = auto()
    # The shared secret only: the portal backend.
    BACKEND = auto()
    # A portal user: their own Matrix token, or the shared secret with ``?user_id=``.
    USER = auto()
    # The shared secret (acting for a user or not) or a user's token; the handler decides.
    CALLER = auto()


@dataclass(frozen=True)
class Route:
    """One operation of the API: what it takes, who may call it, what it answers."""

    method: str
    path: str
    operation_id: str
    handler: Handler
    """A method of one of the route groups passed to :func:`register`, taking a
    ``Call[body, query]`` of this route's models."""
    auth: Auth
    tag: str
    summary: str
    answers: Mapping[int, Answer]
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: Sequence[str] = field(default_factory=tuple)
    """The refusals of its own it may answer with (``refusals.py``), besides those that come
    with its auth, path ids, query and body."""

    @property
    def path_params(self) -> list[str]:
        return _PARAM_RE.findall(self.path)

    @cached_property
    def query_params(self) -> frozenset[str]:
        """The query parameters it takes: its query model's, and ``user_id`` (acting for a
        user)."""
        fields = self.query.model_fields.items() if self.query else ()
        return frozenset({"user_id", *(f.alias or name for name, f in fields)})


def register(
    router: web.UrlDispatcher,
    routes: Sequence[Route],
    groups: Sequence[object],
    auth: Authenticator,
    directory: DirectoryStore,
) -> None:
    """Add every route, its handler bound to the group object whose class defines it."""
    by_class = {type(group).__qualname__: group for group in groups}
    for route in routes:
        _check_handler(route)
        owner = route.handler.__qualname__.split(".")[0]
        handler = partial(route.handler, by_class[owner])
        gate = partial(_dispatch, route, handler, auth, directory)
        router.add_route(route.method, route.path, gate)


def _check_handler(route: Route) -> None:
    """The handler takes the ``Call`` of the models the table names for its route."""
    hints = get_type_hints(route.handler)
    (call,) = [hint for name, hint in hints.items() if name not in ("self", "return")]
    takes = get_args(call)
    named = (route.body or type(None), route.query or type(None))
    if takes != named:
        raise TypeError(
            f"{route.operation_id}: {route.handler.__qualname__} takes {call}, the route "
            f"table names body={named[0].__name__}, query={named[1].__name__}"
        )


async def _dispatch(
    route: Route,
    handler: Callable[[Call[Any, Any]], Awaitable[web.StreamResponse]],
    auth: Authenticator,
    directory: DirectoryStore,
    request: web.Request,
) -> web.StreamResponse:
    request[OPERATION] = route.operation_id
    if route.auth is Auth.NONE:
        return await handler(Call(request, Caller(backend=False, user_id=None), {}, None, None))
    caller = await auth.authenticate(request)
    actor = None
    if route.auth is Auth.BACKEND:
        caller.require_backend()
    elif route.auth is Auth.USER:
        actor = await resolve_actor(directory, UserID(caller.require_user()))
    path = {
        name: PATH_CHECKS[name](name, request.match_info.get(name)) for name in route.path_params
    }
    for name in request.query.keys() - route.query_params:
        raise unknown_parameter(name)  # a misspelt parameter would otherwise do nothing
    query = parse(route.query, dict(request.query)) if route.query else None
    body = parse(route.body, await read_json(request)) if route.body else None
    return await handler(Call(request, caller, path, query, body, actor))


def unknown_parameter(name: str) -> PracticeError:
    return invalid_param(name, f"Unknown query parameter '{name}'.")
