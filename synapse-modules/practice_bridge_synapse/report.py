"""Refusals the modules report to the bridge, for the practice's audit log.

A refusal happens before anything is stored, so the bridge never sees the attempt in a
transaction. The refusals that concern the practice (a name or picture of one's own, leaving a
chat, membership that is the practice's, a kind of event the chats do not take) are sent to
the appservice instead: ``PUT {url}/_matrix/app/unstable/org.practicebridge/refusals/{id}``
with the registration's ``hs_token``, where ``url`` and ``hs_token`` come from the appservice
registration file the module is given (``registration``, the file Synapse loads too).

Never in the way of the refusal: the report is sent in the background after the answer is
decided, again with a growing pause while the bridge does not answer (a few minutes in all),
and at most a bounded number of reports wait at once (a flood is logged and dropped). The id is
the refused event's id, or a fresh one for a profile change, so that the bridge audits a report
once however often it arrives. Reports carry who, where, which rule and which event type,
never content.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from synapse.module_api import ModuleApi

from .names import REFUSALS_PATH

logger = logging.getLogger("practice.refusals")

_ATTEMPTS = 8
_FIRST_PAUSE = 1.0
_LONGEST_PAUSE = 60.0
_MAX_WAITING = 1000


def read_registration(path: str) -> tuple[str, str] | None:
    """The appservice's ``url`` and ``hs_token`` from its registration file, or None when it
    has no url (an appservice without one gets no reports)."""
    import yaml  # Synapse's own dependency.

    with open(path) as f:
        registration = yaml.safe_load(f)
    if not isinstance(registration, Mapping):
        raise ValueError(f"{path} is not an appservice registration")
    url, token = registration.get("url"), registration.get("hs_token")
    if not isinstance(token, str) or not token:
        raise ValueError(f"{path} has no hs_token")
    if not isinstance(url, str) or not url:
        return None
    return url.rstrip("/"), token


class RefusalReporter:
    def __init__(self, api: ModuleApi, target: tuple[str, str] | None) -> None:
        self._api = api
        self._url = target[0] + REFUSALS_PATH if target else None
        self._auth = [f"Bearer {target[1]}".encode()] if target else []
        self._waiting = 0

    @classmethod
    def from_config(cls, api: ModuleApi, config: Mapping[str, Any]) -> RefusalReporter:
        """Reporting to the appservice of the module config's ``registration`` file, if any."""
        registration = config.get("registration")
        return cls(api, read_registration(registration) if registration else None)

    def report(
        self,
        rule: str,
        user_id: str,
        *,
        refusal_id: str | None = None,
        room_id: str | None = None,
        event_type: str | None = None,
        msgtype: Any = None,
    ) -> None:
        """Send one report in the background; return at once."""
        if self._url is None:
            return
        if self._waiting >= _MAX_WAITING:
            logger.warning("Too many refusal reports waiting; not reporting %s's", user_id)
            return
        body: dict[str, Any] = {"user_id": user_id, "rule": rule}
        for key, value in (("room_id", room_id), ("event_type", event_type)):
            if value is not None:
                body[key] = value
        if isinstance(msgtype, str):
            body["msgtype"] = msgtype
        self._waiting += 1
        self._api.run_as_background_process(
            "practice_refusal_report", self._send, refusal_id or uuid.uuid4().hex, body
        )

    async def _send(self, refusal_id: str, body: dict[str, Any]) -> None:
        assert self._url is not None
        url = self._url + quote(refusal_id, safe="")
        pause = _FIRST_PAUSE
        try:
            for _ in range(_ATTEMPTS):
                try:
                    await self._api.http_client.put_json(
                        url, body, headers={b"Authorization": self._auth}
                    )
                    return
                except Exception as e:
                    code = getattr(e, "code", None)
                    if isinstance(code, int) and 400 <= code < 500:
                        logger.warning(
                            "The bridge refused refusal report %s (%d)", refusal_id, code
                        )
                        return
                    logger.info(
                        "Refusal report %s not delivered yet: %s", refusal_id, type(e).__name__
                    )
                await self._api.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
            logger.warning("Gave up reporting refusal %s to the bridge", refusal_id)
        finally:
            self._waiting -= 1
