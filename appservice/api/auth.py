"""Who is calling the provisioning API.

Two modes (docs/api.md#authentication): the portal backend with ``Authorization: Bearer
<shared_secret>``, which may act for a user with ``?user_id=``; or a namespace user with their own
Matrix access token, checked against the homeserver and trusted for ``token_cache_seconds``. The
shared secret is compared in constant time; tokens are cached by their SHA-256, never kept in
clear.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web
from mautrix.types import UserID

from bridge.errors import Codes, PracticeError, forbidden, invalid_param
from bridge.identity import IdentityMapper
from bridge.ports import Homeserver

_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: the backend (optionally acting for a user), or a user."""

    backend: bool
    user_id: UserID | None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.backend:
            return f"backend:{self.user_id}" if self.user_id else "backend"
        return str(self.user_id)

    def require_backend(self) -> None:
        if not self.backend:
            raise backend_only()

    def require_user(self) -> UserID:
        if self.user_id is None:
            raise missing_user_id()
        return self.user_id


class Authenticator:
    def __init__(
        self,
        shared_secret: str,
        homeserver: Homeserver,
        mapper: IdentityMapper,
        cache_seconds: int,
    ) -> None:
        self._secret = shared_secret.encode()
        self._hs = homeserver
        self._mapper = mapper
        self._ttl = cache_seconds
        self._cache: OrderedDict[bytes, tuple[UserID, float]] = OrderedDict()

    def forget_user(self, user_id: str) -> None:
        """Drop cached tokens of a user whose access just ended."""
        for key in [k for k, (uid, _) in self._cache.items() if uid == user_id]:
            del self._cache[key]

    async def authenticate(self, request: web.Request) -> Caller:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise missing_token()
        act_for = request.query.get("user_id")
        # Header bytes that are not UTF-8 arrive as surrogate escapes; compare the raw bytes.
        if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._secret):
            if act_for is not None and self._mapper.parse(act_for) is None:
                raise not_a_portal_user()
            return Caller(backend=True, user_id=UserID(act_for) if act_for else None)
        if not (token.isascii() and token.isprintable()):
            # Matrix access tokens are printable ASCII: this one cannot be valid.
            raise unknown_token()
        user_id = await self._user_for_token(token)
        if act_for is not None and act_for != user_id:
            raise acting_for_another()
        return Caller(backend=False, user_id=user_id)

    async def _user_for_token(self, token: str) -> UserID:
        key = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        try:
            user_id = await self._hs.whoami(token)
        except Exception as e:
            raise PracticeError(
                Codes.UNKNOWN, "The homeserver could not check the token.", 502
            ) from e
        if user_id is None:
            raise unknown_token()
        if self._mapper.parse(user_id) is None:
            raise forbidden("This account is not a portal user of the practice bridge.")
        self._cache[key] = (user_id, now + self._ttl)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return user_id


def missing_token() -> PracticeError:
    return PracticeError(Codes.MISSING_TOKEN, "Missing 'Authorization: Bearer' token.", 401)


def unknown_token() -> PracticeError:
    return PracticeError(Codes.UNKNOWN_TOKEN, "Unknown or expired access token.", 401)


def backend_only() -> PracticeError:
    return forbidden("Only the portal backend may do this.")


def missing_user_id() -> PracticeError:
    return PracticeError(
        Codes.MISSING_PARAM, "Name the user to act for with ?user_id=.", 400, param="user_id"
    )


def not_a_portal_user() -> PracticeError:
    return invalid_param("user_id", "'user_id' must be a portal user of this bridge.")


def acting_for_another() -> PracticeError:
    return forbidden("Only the portal backend may act for another user.")
