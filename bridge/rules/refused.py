"""What the Synapse module refused a portal user, on the practice's audit log.

The module refuses before anything is stored, so no event of such an attempt ever reaches the
bridge. For the refusals that concern the practice (posing with a name or picture of one's own,
leaving a chat, membership that is the practice's, a kind of event the chats do not take) it
reports the refusal to the appservice instead (``appservice/intake.py``), in the background and
again until the bridge answers. Each report is audited once, however often it arrives: its id
is the audit row's ``effect_key``. Reports never carry content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

from bridge.audit import AuditLog
from bridge.identity import IdentityMapper
from practice_bridge_synapse.names import REFUSALS_PATH as REFUSALS_PATH

log = logging.getLogger("practice.refused")

AUDIT_ACTION: Final = "rule.refused"
RefusedRule = Literal["profile", "leave", "membership", "event_type"]


@dataclass(frozen=True)
class Refusal:
    """One refused attempt, as the module reports it."""

    refusal_id: str
    user_id: str
    rule: RefusedRule
    room_id: str | None = None
    event_type: str | None = None
    msgtype: str | None = None


class RefusalLog:
    def __init__(self, audit: AuditLog, mapper: IdentityMapper) -> None:
        self.audit = audit
        self.mapper = mapper

    async def record(self, refusal: Refusal) -> bool:
        """Audit the refusal under the user's practice, once; False for someone who is not a
        portal user (nothing of a practice's)."""
        who = self.mapper.parse(refusal.user_id)
        if who is None:
            log.info("Ignored a refusal report about %s: not a portal user", refusal.user_id)
            return False
        details: dict[str, Any] = {"rule": refusal.rule}
        if refusal.event_type is not None:
            details["event_type"] = refusal.event_type
        if refusal.msgtype is not None:
            details["msgtype"] = refusal.msgtype
        await self.audit.record(
            who.practice_id,
            refusal.user_id,
            AUDIT_ACTION,
            refusal.room_id,
            details,
            effect_key=f"refused:{refusal.refusal_id}",
        )
        return True
