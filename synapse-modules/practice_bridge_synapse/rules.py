"""The practice-bridge Synapse module: the practice rules, enforced before anything is stored.

Runs inside Synapse, on Twisted. No asyncio libraries, no blocking I/O and no bridge imports:
everything it needs comes from its config (written by ``practice-bridge generate-registration``),
Synapse's module API and the pure rule code it shares with the bridge
(:mod:`practice_bridge_synapse.policy`, :mod:`practice_bridge_synapse.content`). Loaded through
homeserver.yaml::

    modules:
      - module: practice_bridge_synapse.rules.PracticeRules
        config:
          bot_user_id: "@practicebot:example.com"
          user_regex: "@pb_(staff|client)_...:example\\\\.com$"
          client_regex: "@pb_client_...:example\\\\.com$"
          promote_bot_to_admin: true
          registration: /etc/synapse/practice-bridge-registration.yaml

The rules (docs/architecture.md#where-each-rule-is-enforced, docs/security.md#a-hostile-client)
hold for portal users (``user_regex``: staff and clients); the bot and everyone else pass
untouched, without a single state lookup. A *practice chat* is a room with a policy event
(``org.practicebridge.policy``, state key ``""``) *sent by the bot*; a policy event from anyone
else is ignored.

- clients never create rooms or aliases, publish rooms, invite anyone (Matrix or third-party
  ids), or send state events other than their own membership;
- in a practice chat, a portal user sends only what is on the allow-list
  (``ORG.PRACTICEBRIDGE.EVENT_NOT_ALLOWED`` with ``event_type`` and ``msgtype``);
- there a client's text is at most ``client_message_limit`` code points, counting what the
  client wrote wherever it is written (:func:`~practice_bridge_synapse.content.written_length`;
  ``ORG.PRACTICEBRIDGE.MESSAGE_TOO_LONG`` with ``max_length``); staff have no limit;
- when that policy says ``clients_may_send: false`` (direct chat access is off), a client sends
  nothing there but redactions of their own messages (``ORG.PRACTICEBRIDGE.DIRECT_CHAT_DISABLED``);
- membership in a practice chat is the practice's (joins and leaves included): from their own
  session a portal user only accepts an invitation; leaving (``CANNOT_LEAVE_CHAT``), a name or
  picture of their own in the chat (``PROFILE_FROM_DIRECTORY``), joining again after a removal
  and any member event for someone else (``M_FORBIDDEN``) are refused. The bridge acting for
  them through the appservice, and Synapse itself (a chat's deletion), have no session and pass.

Refusals are raised as :class:`PracticeRuleError`, a ``SynapseError`` that Synapse renders as
``{"errcode": ..., "error": <a sentence a client can show>, ...fields}``, the same shape as the
bridge's API errors. (A spam checker's documented ``(Codes, dict)`` answer cannot carry an errcode
of our own, and Synapse replaces its message with a generic one.) The ones that concern the
practice (the allow-list, membership, names) are reported to the bridge for its audit log, in
the background (:mod:`practice_bridge_synapse.report`, with the registration's ``url`` and
``hs_token``; without ``registration`` nothing is reported).

Every rule on events runs in ``check_event_allowed``, which Synapse calls for every event created
here (by a session, the appservice acting for someone, or Synapse itself) with the room's state
before it: Synapse reads that state for this callback whatever it does, so the rules make no
lookup of their own, and a message costs the module no more than a membership change. The
parsed policy is kept per room, keyed by the policy event's id, in a bounded LRU, so a new
policy event replaces it at once.

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
from collections.abc import Mapping
from typing import Any, Literal

from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.module_api.errors import SynapseError

from .bot import MAX_RETRY_SECONDS, BotPromotion
from .content import off_the_list
from .errors import Codes
from .metrics import refused
from .names import MODULE_NAME, POLICY_STATE, PROBE_PATH
from .policy import (
    MEMBERSHIP_REFUSALS,
    Policy,
    membership_rule,
    message_rule,
    trusted_policy,
)
from .probe import Probe
from .report import RefusalReporter

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
        refused(str(errcode))


def _forbidden(message: str) -> PracticeRuleError:
    return PracticeRuleError(Codes.FORBIDDEN, message)


def too_long(limit: int) -> PracticeRuleError:
    return PracticeRuleError(
        Codes.MESSAGE_TOO_LONG,
        f"This message is too long: the practice allows at most {limit} characters.",
        400,
        max_length=limit,
    )


def not_allowed(event_type: str, msgtype: str | None = None) -> PracticeRuleError:
    fields = {"event_type": event_type} | ({"msgtype": msgtype} if msgtype else {})
    return PracticeRuleError(
        Codes.EVENT_NOT_ALLOWED,
        "This kind of message cannot be sent in the practice's chats.",
        403,
        **fields,
    )


def _from_session(event: Any) -> bool:
    """Whether the event comes from a user's own session (a device), not from the appservice
    acting for them or from Synapse itself (a chat's deletion, an admin's change)."""
    return getattr(event.internal_metadata, "device_id", None) is not None


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
        self._user_re = re.compile(config["user_regex"])
        self._reporter = RefusalReporter.from_config(api, config)
        self._promote = bool(config.get("promote_bot_to_admin", False))
        # room id -> (policy event id, the trusted policy or None when it was forged)
        self._policies: OrderedDict[str, tuple[str, Policy | None]] = OrderedDict()
        api.register_spam_checker_callbacks(
            user_may_invite=self.user_may_invite,
            user_may_send_3pid_invite=self.user_may_send_3pid_invite,
            user_may_create_room=self.user_may_create_room,
            user_may_create_room_alias=self.user_may_create_room_alias,
            user_may_publish_room=self.user_may_publish_room,
            user_may_send_state_event=self.user_may_send_state_event,
        )
        api.register_third_party_rules_callbacks(check_event_allowed=self.check_event_allowed)
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

    def is_portal_user(self, user_id: str) -> bool:
        return user_id != self._bot and bool(self._user_re.fullmatch(user_id))

    # -- events ----------------------------------------------------------------------------

    async def check_event_allowed(
        self, event: Any, state_events: Mapping[tuple[str, str], Any]
    ) -> tuple[bool, dict[str, Any] | None]:
        """Every event created here, by a session, the appservice or Synapse itself, with the
        room's state before it (which Synapse reads for this callback anyway, so the rules
        need no lookup of their own)."""
        sender = event.sender
        if not self.is_portal_user(sender):
            return True, None
        if event.type == "m.room.member":
            self._check_membership(event, state_events)
        elif event.is_state():
            if self.is_client(sender):
                raise _forbidden("Clients cannot change a chat's settings.")
        else:
            self._check_message(event, self._policy(event.room_id, state_events))
        return True, None

    def _check_message(self, event: Any, policy: Policy | None) -> None:
        """A portal user's message, reaction, redaction... against the chat's policy."""
        client = self.is_client(event.sender)
        rule = message_rule(event.type, event.content, policy, client=client)
        if rule == "event_not_allowed":
            refused = off_the_list(event.type, event.content, staff=not client) or {}
            self._reporter.report(
                "event_type",
                event.sender,
                refusal_id=event.event_id,
                room_id=event.room_id,
                **refused,
            )
            raise not_allowed(**refused)
        if rule == "direct_chat_disabled":
            raise direct_chat_disabled()
        if rule == "message_too_long" and policy is not None:
            raise too_long(policy.client_message_limit or 0)

    def _check_membership(self, event: Any, state_events: Mapping[tuple[str, str], Any]) -> None:
        """A portal user's membership in a practice chat (one with the bot's policy) is the
        practice's."""
        policy = state_events.get((POLICY_STATE, ""))
        if policy is None or policy.sender != self._bot:
            return
        previous = state_events.get(("m.room.member", event.state_key))
        rule = membership_rule(
            event.sender,
            event.state_key,
            event.content.get("membership"),
            previous.content.get("membership") if previous is not None else None,
            from_session=_from_session(event),
        )
        if rule is None:
            return
        errcode, sentence, audited = MEMBERSHIP_REFUSALS[rule]
        self._reporter.report(
            audited, event.sender, refusal_id=event.event_id, room_id=event.room_id
        )
        raise PracticeRuleError(errcode, sentence, 403)

    def _policy(self, room_id: str, state_events: Mapping[tuple[str, str], Any]) -> Policy | None:
        """The room's trusted policy, parsed once per policy event."""
        event = state_events.get((POLICY_STATE, ""))
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
