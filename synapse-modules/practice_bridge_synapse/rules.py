"""The practice-bridge Synapse module: the practice rules, enforced before anything is stored.

Runs inside Synapse, on Twisted. No asyncio libraries, no blocking I/O, no HTTP calls to the
bridge and no bridge imports: everything it needs comes from its config (written by
``practice-bridge generate-registration``), Synapse's module API and the pure rule code it shares
with the bridge (:mod:`practice_bridge_synapse.policy`). Loaded through homeserver.yaml::

    modules:
      - module: practice_bridge_synapse.rules.PracticeRules
        config:
          bot_user_id: "@practicebot:example.com"
          user_regex: "@pb_(staff|client)_...:example\\\\.com$"
          client_regex: "@pb_client_...:example\\\\.com$"
          promote_bot_to_admin: true

The rules (docs/architecture.md#where-each-rule-is-enforced), for users matching ``client_regex``
(portal clients); the bot, staff and everyone else pass untouched, without a single state lookup:

- clients never create rooms or aliases, publish rooms, invite anyone (Matrix or third-party
  ids), or send state events other than their own membership;
- in a room with a policy event (``org.practicebridge.policy``, state key ``""``) *sent by the
  bot*, a client's text is at most ``client_message_limit`` code points: the ``body`` of an
  ``m.room.message`` and of an edit's ``m.new_content`` (``ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG``
  with ``max_length``); media bodies count only when they are captions, not file names;
- when that policy says ``clients_may_send: false`` (direct chat access is off), a client sends
  nothing there but redactions of their own messages (``ORG.PRACTICEBRIDGE.DIRECT_CHAT_DISABLED``);
- a policy event from anyone but the bot is ignored; a room without a trusted policy has no
  length limit, and the refusals above that need no policy still hold.

Refusals are raised as :class:`PracticeRuleError`, a ``SynapseError`` that Synapse renders as
``{"errcode": ..., "error": <a sentence a client can show>, ...fields}``, the same shape as the
bridge's API errors. (A spam checker's documented ``(Codes, dict)`` answer cannot carry an errcode
of our own, and Synapse replaces its message with a generic one.)

State is read through the module API: one current-state lookup of the policy event per client
event (Synapse serves it from its caches); the parsed policy is kept per room, keyed by the
policy event's id, in a bounded LRU, so a new policy event replaces it at once.

It also makes the bridge bot a server admin once the bot is registered (the bridge needs the
admin API to purge rooms and end sessions), when ``promote_bot_to_admin`` is set, checking with
back-off up to ``retry_max_seconds`` (60 by default; :mod:`.bot`), and answers the bridge's
probe at ``/_synapse/client/org.practicebridge/module`` (:mod:`.probe`) so the bridge can log at
start-up whether the rules are enforced here or, after the fact, by the bridge.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Any, Literal

from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.module_api.errors import SynapseError

from .bot import MAX_RETRY_SECONDS, BotPromotion
from .errors import Codes
from .names import MODULE_NAME, POLICY_STATE, PROBE_PATH
from .policy import Policy, message_rule, trusted_policy
from .probe import Probe

logger = logging.getLogger("practice.synapse_module")

MODULE_VERSION = "1"
RULES = (
    "client_message_limit",
    "direct_chat_access",
    "clients_never_create_rooms",
    "clients_never_invite",
    "clients_never_send_state",
)

_CACHE_ROOMS = 10_000


class ModuleConfigError(Exception):
    pass


class PracticeRuleError(SynapseError):
    """A refused client action, rendered like the bridge's errors: errcode, sentence, fields."""

    def __init__(self, errcode: str, message: str, http_status: int = 403, **fields: Any):
        super().__init__(http_status, message, str(errcode), fields)


def _forbidden(message: str) -> PracticeRuleError:
    return PracticeRuleError(Codes.FORBIDDEN, message)


def too_long(limit: int) -> PracticeRuleError:
    return PracticeRuleError(
        Codes.MESSAGE_TOO_LONG,
        f"This message is too long: the practice allows at most {limit} characters.",
        400,
        max_length=limit,
    )


def direct_chat_disabled() -> PracticeRuleError:
    return PracticeRuleError(
        Codes.DIRECT_CHAT_DISABLED,
        "Direct messages to the practice are turned off for you in this chat.",
        403,
    )


class PracticeRules:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        self._api = api
        self._bot: str = config["bot_user_id"]
        self._client_re = re.compile(config["client_regex"])
        self._promote = bool(config.get("promote_bot_to_admin", False))
        # room id -> (policy event id, the trusted policy or None when it was forged)
        self._policies: OrderedDict[str, tuple[str, Policy | None]] = OrderedDict()
        api.register_spam_checker_callbacks(
            check_event_for_spam=self.check_event_for_spam,
            user_may_invite=self.user_may_invite,
            user_may_send_3pid_invite=self.user_may_send_3pid_invite,
            user_may_create_room=self.user_may_create_room,
            user_may_create_room_alias=self.user_may_create_room_alias,
            user_may_publish_room=self.user_may_publish_room,
            user_may_send_state_event=self.user_may_send_state_event,
        )
        self._promotion = BotPromotion(
            api, self._bot, float(config.get("retry_max_seconds", MAX_RETRY_SECONDS))
        )
        answer = {
            "module": MODULE_NAME,
            "version": MODULE_VERSION,
            "bot_user_id": self._bot,
            "rules": list(RULES),
        }
        api.register_web_resource(PROBE_PATH, Probe(api, self._bot, answer, on_bot=self._bot_seen))
        if self._promote:
            self._promotion.start()
        logger.info("practice-bridge module loaded for bot %s: rules enforced", self._bot)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        for key in ("bot_user_id", "user_regex", "client_regex"):
            if not isinstance(config.get(key), str) or not config[key]:
                raise ModuleConfigError(f"practice-bridge module: '{key}' is required")
            if key != "bot_user_id":
                try:
                    re.compile(config[key])
                except re.error as e:
                    raise ModuleConfigError(f"practice-bridge module: '{key}': {e}") from None
        retry = config.get("retry_max_seconds", MAX_RETRY_SECONDS)
        if not isinstance(retry, int | float) or isinstance(retry, bool) or retry <= 0:
            raise ModuleConfigError(
                "practice-bridge module: 'retry_max_seconds' must be a positive number"
            )
        return config

    def _bot_seen(self) -> None:
        """The bridge probed the module as its bot: it has registered the bot by now."""
        if self._promote:
            self._promotion.check_now()

    def is_client(self, user_id: str) -> bool:
        return user_id != self._bot and bool(self._client_re.fullmatch(user_id))

    # -- events ----------------------------------------------------------------------------

    async def check_event_for_spam(self, event: Any) -> Literal["NOT_SPAM"]:
        """Every event a local user sends (not membership: see the invite and state checks)."""
        sender = event.sender
        if not self.is_client(sender):
            return NOT_SPAM
        if event.is_state():
            if event.type == "m.room.member" and event.state_key == sender:
                return NOT_SPAM
            raise _forbidden("Clients cannot change a chat's settings.")
        if event.type == "m.room.redaction":
            return NOT_SPAM  # Power levels let a client redact only their own messages.
        policy = await self._policy(event.room_id)
        rule = message_rule(event.type, event.content, policy)
        if rule == "direct_chat_disabled":
            raise direct_chat_disabled()
        if rule == "encrypted":
            # The chat is not encrypted; an encrypted body could not be held to the limit.
            raise _forbidden("This chat does not take encrypted messages.")
        if rule == "message_too_long" and policy is not None:
            raise too_long(policy.client_message_limit or 0)
        return NOT_SPAM

    async def _policy(self, room_id: str) -> Policy | None:
        state = await self._api.get_room_state(room_id, [(POLICY_STATE, "")])
        event = state.get((POLICY_STATE, ""))
        if event is None:
            return None
        cached = self._policies.get(room_id)
        if cached is not None and cached[0] == event.event_id:
            self._policies.move_to_end(room_id)
            return cached[1]
        policy = trusted_policy(event.sender, event.content, self._bot)
        if policy is None:
            logger.warning(
                "Ignoring the policy of %s: sent by %s, not the bot", room_id, event.sender
            )
        self._policies[room_id] = (event.event_id, policy)
        if len(self._policies) > _CACHE_ROOMS:
            self._policies.popitem(last=False)
        return policy

    # -- rooms, invites, state -------------------------------------------------------------

    async def user_may_create_room(
        self, user_id: str, room_config: dict[str, Any]
    ) -> Literal["NOT_SPAM"]:
        if self.is_client(user_id):
            raise _forbidden("Clients cannot create chats; the practice starts them.")
        return NOT_SPAM

    async def user_may_create_room_alias(
        self, user_id: str, room_alias: Any
    ) -> Literal["NOT_SPAM"]:
        if self.is_client(user_id):
            raise _forbidden("Clients cannot create room addresses.")
        return NOT_SPAM

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Literal["NOT_SPAM"]:
        if self.is_client(user_id):
            raise _forbidden("Clients cannot publish chats.")
        return NOT_SPAM

    async def user_may_invite(
        self, inviter: str, invitee: str, room_id: str
    ) -> Literal["NOT_SPAM"]:
        if self.is_client(inviter):
            raise _forbidden("Only the practice adds people to chats.")
        return NOT_SPAM

    async def user_may_send_3pid_invite(
        self, inviter: str, medium: str, address: str, room_id: str
    ) -> Literal["NOT_SPAM"]:
        return await self.user_may_invite(inviter, address, room_id)

    async def user_may_send_state_event(
        self, user_id: str, room_id: str, event_type: str, state_key: str, content: Any
    ) -> Literal["NOT_SPAM"]:
        if not self.is_client(user_id):
            return NOT_SPAM
        if event_type == "m.room.member" and state_key == user_id:
            return NOT_SPAM  # Their own membership: leaving a chat.
        raise _forbidden("Clients cannot change a chat's settings.")
