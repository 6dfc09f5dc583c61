"""Defence in depth: the practice rules enforced after the fact when the Synapse module is absent.

At start-up the bridge probes for the module (:meth:`PostHocRules.check_module`). When it answers,
Synapse refuses violations before storing them and this handler only keeps track of each room's
policy. When it does not (a homeserver that cannot load modules), every client event passes
through :meth:`PostHocRules.__call__` in the pipeline, in room order, inside the pipeline's
transaction, and an event that breaks a rule is recorded there as a violation:

- an event off the allow-list (an encrypted one included), an over-limit message, edit,
  caption, reaction or redaction reason, a message in a direct chat whose client may not send:
  the bot redacts it;
- a state event other than the sender's own membership: the bot redacts it;
- an invitation: the bot kicks the invited user (which withdraws the invitation);
- a room the client created: the client leaves it (through the appservice) and forgets it.

In chats the sender is then told why in an ``m.notice`` from the bot that mentions them and never
quotes their text. The policy is the bot's own policy state as the pipeline saw it in that room's
order (kept in ``room_policy``): the same event the module trusts, at the point in the room's
history where the client sent; a room whose policy predates this table is read from the
homeserver once. A policy event from anyone else changes nothing here: the bot's last policy
stays in force (the module, which sees only the room's current state, then finds no trusted
policy and applies no limit; both ignore the forged one).

Exactly once: the violation row commits with the event's "processed" mark, so a redelivered event
is never judged twice; a worker performs the row after the commit and marks it done. A resend
after a crash between acting and marking uses the same transaction ids (Synapse answers with the
first event) and first looks for the notice in the room's recent timeline.
"""

from __future__ import annotations

import hashlib
import html
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Connection

from bridge.audit import AuditLog
from bridge.background import BackgroundLoop, LoopWorker
from bridge.constants import POLICY_STATE
from bridge.events import QueuedEvent
from bridge.identity import IdentityMapper
from practice_bridge_synapse.names import MODULE_NAME
from practice_bridge_synapse.policy import Policy, message_rule, state_rule, trusted_policy

from .policy import explanation
from .store import RuleStore, Violation

log = logging.getLogger("practice.rules")

RULE_KEY = "org.practicebridge.rule"
REDACT_REASON = "Removed by the practice's rules"
_REDACTED = frozenset(
    {"event_not_allowed", "message_too_long", "direct_chat_disabled", "encrypted", "state_event"}
)
_MAX_ATTEMPTS = 12  # with the backoff below: about an hour and a half of retries
_POLL_SECONDS = 1.0
_RETENTION_MS = 14 * 24 * 3600 * 1000


class MatrixActions(Protocol):
    """What the rules ask of the homeserver, as the bot (implemented in appservice/)."""

    async def probe_module(self) -> dict[str, Any] | None: ...

    async def policy_event(self, room_id: RoomID) -> tuple[str, str, dict[str, Any]] | None: ...

    async def redact(self, room_id: RoomID, event_id: str, reason: str, txn_id: str) -> None: ...

    async def notify(self, room_id: RoomID, content: dict[str, Any], txn_id: str) -> str: ...

    async def find_notice(self, room_id: RoomID, marker: str, event_id: str) -> bool: ...

    async def kick(self, room_id: RoomID, user_id: UserID, reason: str) -> None: ...

    async def leave(self, room_id: RoomID, user_id: UserID) -> None: ...


def txn_id(step: str, event_id: str) -> str:
    """A transaction id derived from the offending event: the same step never sends twice."""
    return f"pb-rule-{step}-" + hashlib.sha256(event_id.encode()).hexdigest()[:32]


def notice_content(v: Violation) -> dict[str, Any]:
    """The notice that tells the sender what happened and why: a mention, never their text."""
    errcode, sentence = explanation(v.rule, v.max_length)
    link = f"https://matrix.to/#/{quote(v.sender, safe='@:')}"
    marker: dict[str, Any] = {"errcode": errcode, "event_id": v.event_id, "user_id": v.sender}
    if v.max_length is not None:
        marker["max_length"] = v.max_length
    return {
        "msgtype": "m.notice",
        "body": f"{v.sender}: {sentence}",
        "format": "org.matrix.custom.html",
        "formatted_body": (
            f'<a href="{html.escape(link)}">{html.escape(v.sender)}</a>: {html.escape(sentence)}'
        ),
        "m.mentions": {"user_ids": [v.sender]},
        RULE_KEY: marker,
    }


@dataclass(eq=False)
class PostHocRules(LoopWorker):
    store: RuleStore
    audit: AuditLog
    matrix: MatrixActions
    mapper: IdentityMapper

    def __post_init__(self) -> None:
        self.bot = self.mapper.bot_mxid
        self.enforcing = False  # set by check_module(): True when the module is absent
        # Woken when the pipeline records a violation (perhaps just before its commit); a short
        # poll picks up what a wake came too early for and what a restart left.
        super().__init__(BackgroundLoop("rule-enforcer", self._work, log, poll=_POLL_SECONDS))
        self._polls = 0

    # -- start-up --------------------------------------------------------------------------

    async def check_module(self) -> bool:
        """Probe for the Synapse module; enforce after the fact when it is not there."""
        try:
            answer = await self.matrix.probe_module()
        except Exception as e:
            log.warning("Could not probe for the Synapse module (%s)", type(e).__name__)
            answer = None
        active = (
            isinstance(answer, dict)
            and answer.get("module") == MODULE_NAME
            and answer.get("bot_user_id") == self.bot
        )
        if active:
            assert answer is not None
            log.info(
                "practice rules enforced by the Synapse module (version %s: %s)",
                answer.get("version"),
                ", ".join(str(r) for r in answer.get("rules", [])),
            )
        else:
            if isinstance(answer, dict) and answer.get("module") == MODULE_NAME:
                log.warning(
                    "The Synapse module is configured for %s, not this bridge's bot %s",
                    answer.get("bot_user_id"),
                    self.bot,
                )
            log.warning(
                "Synapse module not loaded: the bridge enforces the rules after the fact "
                "(violations are redacted)"
            )
        self.enforcing = not active
        return active

    # -- the pipeline handler --------------------------------------------------------------

    async def __call__(self, conn: Connection, ev: QueuedEvent) -> None:
        payload = ev.payload
        if ev.ephemeral or not ev.room_id:
            return
        etype, sender = payload.get("type"), payload.get("sender")
        state_key, content = payload.get("state_key"), payload.get("content")
        if not isinstance(etype, str) or not isinstance(sender, str):
            return
        if etype == POLICY_STATE and state_key == "" and sender == self.bot:
            await self.store.save_policy(
                conn, ev.room_id, ev.event_id, content if isinstance(content, dict) else {}
            )
            return
        if not self.enforcing:
            return
        who = self.mapper.parse(sender)
        if who is None or who.kind != "client":
            return
        v = await self._judge(conn, ev.room_id, ev.event_id, etype, sender, state_key, content)
        if v is None:
            return
        ev.rejected = True
        if not await self.store.record(conn, v):
            return
        practice_id = await self.store.practice_of(conn, ev.room_id)
        if practice_id is not None:
            await self.audit.record(
                practice_id,
                sender,
                "rule.violated",
                ev.room_id,
                {"rule": v.rule, "event_id": ev.event_id},
                conn=conn,
                effect_key=f"rule:{ev.event_id}",
            )
        log.info(
            "%s broke the rule %s in %s (%s); undoing it after commit",
            sender,
            v.rule,
            ev.room_id,
            ev.event_id,
        )
        self.notify()

    async def _judge(
        self,
        conn: Connection,
        room_id: str,
        event_id: str,
        etype: str,
        sender: str,
        state_key: Any,
        content: Any,
    ) -> Violation | None:
        if isinstance(state_key, str):
            rule = state_rule(etype, state_key, sender, content)
            if rule is None:
                return None
            # Outside its own chats the bot can do nothing but take the client out of a room
            # the client created.
            if rule != "room_created" and await self.store.practice_of(conn, room_id) is None:
                return None
            return Violation(
                event_id, room_id, sender, rule, target=state_key if rule == "invite" else None
            )
        if await self.store.practice_of(conn, room_id) is None:
            return None
        policy = await self._policy(conn, RoomID(room_id))
        rule = message_rule(etype, content, policy)
        if rule is None:
            return None
        limit = policy.client_message_limit if policy and rule == "message_too_long" else None
        return Violation(event_id, room_id, sender, rule, max_length=limit)

    async def _policy(self, conn: Connection, room_id: RoomID) -> Policy | None:
        known, policy = await self.store.policy(conn, room_id)
        if known:
            return policy
        # The room's policy events went through the pipeline before policies were kept:
        # read the current one from the homeserver, once.
        try:
            found = await self.matrix.policy_event(room_id)
        except Exception as e:
            log.warning("Could not read the policy of %s (%s)", room_id, type(e).__name__)
            return None
        if found is None:
            await self.store.save_policy(conn, room_id, None, None)
            return None
        policy_event_id, sender, content = found
        trusted = trusted_policy(sender, content, self.bot)
        await self.store.save_policy(
            conn, room_id, policy_event_id, content if trusted is not None else None
        )
        return trusted

    # -- the worker ------------------------------------------------------------------------

    async def _work(self) -> None:
        await self.run_once()
        self._polls += 1
        if self._polls % 3600 == 0:
            await self.store.prune(_RETENTION_MS)

    async def run_once(self) -> int:
        """Undo and explain every recorded violation not done yet; return how many were tried."""
        pending = await self.store.pending()
        for v in pending:
            await self._enforce(v)
        return len(pending)

    async def _enforce(self, v: Violation) -> None:
        room = RoomID(v.room_id)
        notify = v.rule != "room_created"
        if v.attempts > 0 and notify and await self.matrix.find_notice(room, RULE_KEY, v.event_id):
            # An earlier attempt got as far as the notice (the last step) before it stopped.
            await self.store.done(v.event_id, "ok")
            return
        await self.store.attempt(v.event_id, retry_after_ms=min(2**v.attempts, 600) * 1000)
        try:
            if v.rule in _REDACTED:
                await self.matrix.redact(
                    room, v.event_id, REDACT_REASON, txn_id("redact", v.event_id)
                )
            if v.rule == "invite" and v.target:
                await self.matrix.kick(room, UserID(v.target), "Only the practice adds people")
            if v.rule == "room_created":
                await self.matrix.leave(room, UserID(v.sender))
            if notify:
                await self.matrix.notify(room, notice_content(v), txn_id("notice", v.event_id))
        except Exception as e:
            if isinstance(e, MatrixRequestError):
                reason = e.errcode
                refused = 400 <= e.http_status < 500 and e.http_status != 429
            else:
                reason, refused = type(e).__name__, False
            if refused or v.attempts + 1 >= _MAX_ATTEMPTS:
                log.error("Could not undo %s in %s (%s); giving up", v.rule, v.room_id, reason)
                await self.store.done(v.event_id, f"failed:{reason}")
            else:
                log.warning("Undoing %s in %s failed (%s); will retry", v.rule, v.room_id, reason)
            return
        await self.store.done(v.event_id, "ok")
        log.info("Undid %s of %s in %s (%s)", v.rule, v.sender, v.room_id, v.event_id)
