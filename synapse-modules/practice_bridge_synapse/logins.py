"""Clients sign in only through the bridge: never with a password, never with single sign-on;
and no app sign-in takes a device the bridge made.

Portal clients use the portal, whose sessions the bridge mints with the appservice's login
(``m.login.application_service``). A client account is created without a password and the
bridge never issues one, but an administrator could still set one (Synapse's admin API), and a
single sign-on provider could map someone to a client's localpart. This module refuses both, in
every Synapse process that serves logins. Loaded through homeserver.yaml::

    modules:
      - module: practice_bridge_synapse.logins.PracticeLogins
        config:
          user_regex: "@pb_(staff|client)_...:example\\\\.com$"
          client_regex: "@pb_client_...:example\\\\.com$"

Synapse lets a module add ways to sign in, not veto its own password check, so the refusal takes
two of its callbacks within the one login request:

1. the password callback (``auth_checkers`` for ``m.login.password``), which Synapse calls with
   the username before checking the password itself, notes that this request (by the id Synapse
   gives it in its logging context) asked for a portal user's account (``user_regex``) with a
   password, and answers "not mine" (``None``): Synapse then checks the password as usual;
2. ``check_login_for_spam``, which Synapse calls once a login has succeeded, refuses the login of
   a client account that came with a password (the note of step 1) or through single sign-on
   (``auth_provider_id``), with ``ORG.PRACTICEBRIDGE.APP_LOGIN_STAFF_ONLY``; and a staff login
   that came so and names one of the bridge's devices (a portal session's, ``PBPORTAL_…``, or
   the chat list's), with ``M_FORBIDDEN``: an app session reusing such a device would survive
   the end of the person's app sign-in, which ends every device but those. The appservice's
   login never passes step 1, so the bridge's portal sessions are untouched.

Synapse does not tell a module whether its own password check failed (the password callback runs
before it, ``check_login_for_spam`` only after a success), so failed sign-ins are not reported
here: Synapse logs them and its ``rc_login.failed_attempts`` rate limit holds them back.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Any, Literal

from synapse.logging.context import current_context
from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.module_api.errors import SynapseError

from .errors import Codes
from .names import CHAT_LIST_DEVICE, PORTAL_DEVICE_PREFIX

logger = logging.getLogger("practice.synapse_logins")

PASSWORD_LOGIN = "m.login.password"  # noqa: S105 (a login type, not a password)
# Notes of password logins of client accounts kept at once (those that fail are never asked
# for again and make way for newer ones).
_NOTES = 10_000


def _request_id() -> str | None:
    """The id of the request being served (``POST-18``), from Synapse's logging context."""
    request = getattr(current_context(), "request", None)
    request_id = getattr(request, "request_id", None)
    return request_id if isinstance(request_id, str) else None


class ClientLoginRefused(SynapseError):
    def __init__(self) -> None:
        super().__init__(
            403,
            "Clients sign in through the practice portal only.",
            str(Codes.APP_LOGIN_STAFF_ONLY),
        )


class BridgeDeviceRefused(SynapseError):
    def __init__(self) -> None:
        super().__init__(
            403,
            "This device belongs to the practice portal; sign in without naming it.",
            "M_FORBIDDEN",
        )


def is_bridge_device(device_id: str | None) -> bool:
    return device_id is not None and (
        device_id == CHAT_LIST_DEVICE or device_id.startswith(PORTAL_DEVICE_PREFIX)
    )


class PracticeLogins:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        self._api = api
        self._user_re = re.compile(config["user_regex"])
        self._client_re = re.compile(config["client_regex"])
        # request id -> the client account it asked for with a password
        self._notes: OrderedDict[str, str] = OrderedDict()
        api.register_password_auth_provider_callbacks(
            auth_checkers={(PASSWORD_LOGIN, ("password",)): self.password_attempt}
        )
        api.register_spam_checker_callbacks(check_login_for_spam=self.check_login_for_spam)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        for key in ("user_regex", "client_regex"):
            regex = config.get(key)
            if not isinstance(regex, str) or not regex:
                raise ValueError(f"practice-bridge logins module: '{key}' is required")
            re.compile(regex)
        return config

    def is_portal_user(self, user_id: str) -> bool:
        return self._user_re.match(user_id.lower()) is not None

    def is_client(self, user_id: str) -> bool:
        return self._client_re.match(user_id.lower()) is not None

    async def password_attempt(
        self, username: str, login_type: str, login_dict: Any
    ) -> tuple[str, None] | None:
        """Note a password login of a portal user's account; never sign anyone in."""
        user_id = username if username.startswith("@") else f"@{username}:{self._api.server_name}"
        request_id = _request_id()
        if self.is_portal_user(user_id) and request_id is not None:
            self._notes[request_id] = user_id.lower()
            while len(self._notes) > _NOTES:
                self._notes.popitem(last=False)
        return None

    async def check_login_for_spam(
        self,
        user_id: str,
        device_id: str | None,
        initial_display_name: str | None,
        request_info: Any,
        auth_provider_id: str | None = None,
    ) -> Literal["NOT_SPAM"]:
        if not self.is_portal_user(user_id):
            return NOT_SPAM
        request_id = _request_id()
        noted = self._notes.pop(request_id, None) if request_id is not None else None
        with_password = noted == user_id.lower()
        if not with_password and auth_provider_id is None:
            return NOT_SPAM  # the bridge's own login (or a token login an admin made)
        how = "a password" if with_password else f"single sign-on ({auth_provider_id})"
        if self.is_client(user_id):
            logger.warning("refused a login of client account %s with %s", user_id, how)
            raise ClientLoginRefused()
        if is_bridge_device(device_id):
            logger.warning("refused a login of %s with %s on a bridge device", user_id, how)
            raise BridgeDeviceRefused()
        return NOT_SPAM
