"""Sending due notifications: delayed, batched per chat, cancelled by reading, sent once.

A (recipient, chat) pair is due when its oldest pending outbox row has waited the configured
delay. Then every pending row of that pair becomes one email, unless the recipient has read the
chat by now on any device: the worker catches up with the recipient's receipts (private ones
included) through :class:`UserStateMirror` right before deciding. It also checks again that the
recipient still has access, still wants email alerts and is under the per-recipient rate limit
(over it, the rows wait and later messages join the same email).

The rows are linked to an email row (with its Message-ID) before anything reaches the mail
server. A transient failure keeps them pending with a retry time that backs off; the next
attempt re-checks everything and keeps the Message-ID. A permanent failure, or too many
transient ones, marks them failed and writes an audit row once. When the mail server itself is
down, the whole worker backs off instead of trying every chat in turn. An orderly stop lets the
email being handed over finish, so a restart neither loses nor repeats one; only a process
killed between the server's acceptance and the database write would send that email again,
with the same Message-ID and the same messages (messages that arrived meanwhile go in the next
email).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from email.errors import MessageError
from enum import Enum

from mautrix.errors import MatrixRequestError
from mautrix.types import UserID
from mautrix.util.async_db import Database

from bridge.audit import AuditLog
from bridge.chats.userstate import UserStateMirror
from bridge.clock import now_ms
from bridge.directory import DirectoryStore
from bridge.metrics import Metrics
from bridge.settings import model

from .audience import ChatAudience, Recipient, chat_audience, display_name, email_alerts_on
from .index import MessageIndex
from .mailer import Mailer, SendError
from .render import MessageView, Notification, message_view, new_message_id, render
from .source import MessageSource
from .store import RETENTION_MS, DueChat, Email, OutboxRow, OutboxStore

log = logging.getLogger("practice.notifications")
_PRUNE_EVERY_MS = 3600 * 1000


@dataclass
class Pacing:
    """How often and how patiently the worker sends; every value can be set for tests."""

    poll_seconds: float = 5.0
    # Per recipient: at most ``rate_limit`` emails in any ``rate_window_ms``.
    rate_limit: int = 10
    rate_window_ms: int = 3600 * 1000
    # Retries after a transient failure: base, doubling, capped; then the email has failed.
    backoff_ms: int = 30 * 1000
    backoff_max_ms: int = 3600 * 1000
    max_attempts: int = 48

    def backoff(self, attempts: int) -> int:
        return min(self.backoff_max_ms, self.backoff_ms * 2 ** max(0, min(attempts - 1, 30)))


class Outcome(Enum):
    SENT = "sent"
    NOTHING = "nothing"
    WAITING = "waiting"
    SERVER_DOWN = "server down"


@dataclass(frozen=True)
class EmailSettings:
    portal_url: str
    from_address: str


@dataclass(eq=False)
class NotificationWorker:
    db: Database
    store: OutboxStore
    index: MessageIndex
    directory: DirectoryStore
    mirror: UserStateMirror
    source: MessageSource
    mailer: Mailer
    audit: AuditLog
    settings: EmailSettings
    bot: str
    _: KW_ONLY
    pacing: Pacing = field(default_factory=Pacing)
    clock: Callable[[], int] = now_ms
    # Off while no mail server is configured: then the worker only prunes.
    sending: bool = True
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[Outcome] | None = None
        self._server_failures = 0
        self._server_retry_at = 0
        self._pruned_at = 0

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notification-worker")

    async def stop(self) -> None:
        """Stop; an email being handed to the mail server is finished first."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight is not None:
            await asyncio.gather(self._inflight, return_exceptions=True)

    def notify(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
                await self._prune()
                pause = await self._sleep_seconds()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Sending notifications failed; retrying")
                pause = self.pacing.poll_seconds
            try:
                # Not wait_for: on 3.11 it can lose a cancellation that meets a wake-up.
                async with asyncio.timeout(pause):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _sleep_seconds(self) -> float:
        """Until the next pair is due, but never longer than the poll interval."""
        if not self.sending:
            return _PRUNE_EVERY_MS / 1000
        due = await self.store.next_due()
        if due is None:
            return self.pacing.poll_seconds
        due = max(due, self._server_retry_at)
        return min(self.pacing.poll_seconds, max(0.05, (due - self.clock()) / 1000))

    async def _prune(self) -> None:
        now = self.clock()
        if now - self._pruned_at < _PRUNE_EVERY_MS:
            return
        self._pruned_at = now
        await self.store.prune(now - RETENTION_MS)
        await self.index.prune()

    # -- one round ---------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Deliver every due (recipient, chat) pair once; return how many emails went out."""
        async with self._lock:
            now = self.clock()
            if not self.sending or now < self._server_retry_at:
                return 0
            sent = 0
            for chat in await self.store.due(now):
                # Shielded: a stop waits for the email in hand instead of cutting it off.
                self._inflight = asyncio.ensure_future(self._deliver_safely(chat, now))
                outcome = await asyncio.shield(self._inflight)
                self._inflight = None
                if outcome is Outcome.SENT:
                    sent += 1
                elif outcome is Outcome.SERVER_DOWN:
                    break
            return sent

    async def _deliver_safely(self, chat: DueChat, now: int) -> Outcome:
        try:
            return await self._deliver(chat, now)
        except Exception as e:
            # The homeserver or the database failed, or the data is odd: this chat waits.
            log.warning(
                "Notification to %s about %s postponed (%s)",
                chat.recipient,
                chat.room_id,
                type(e).__name__,
            )
            rows = await self.store.pending(chat.recipient, chat.room_id)
            await self.store.postpone([r.id for r in rows], now + self.pacing.backoff_ms)
            return Outcome.WAITING

    async def _deliver(self, chat: DueChat, now: int) -> Outcome:
        rows = await self.store.pending(chat.recipient, chat.room_id)
        if not rows:
            return Outcome.NOTHING
        audience = await chat_audience(self.db, chat.room_id)
        recipient = audience.recipients.get(chat.recipient) if audience else None
        if audience is None or recipient is None or not recipient.email:
            log.info("No email to %s about %s: no access any more", chat.recipient, chat.room_id)
            return await self._drop(rows, "skipped", now)
        if not await email_alerts_on(self.db, [recipient.user_id]):
            log.info("No email to %s: email alerts are off", chat.recipient)
            return await self._drop(rows, "skipped", now)
        read_ts = await self._read_mark(recipient.user_id, chat.room_id)
        read = [r for r in rows if r.message_ts <= read_ts]
        unread = [r for r in rows if r.message_ts > read_ts]
        if read:
            await self.store.finish([r.id for r in read], "read", now)
        if not unread:
            log.info("No email to %s about %s: read in time", chat.recipient, chat.room_id)
            return await self._drop([], "read", now, emails=rows)
        cut_off = await self.store.cut_off_email(unread)
        if cut_off is not None:
            # Sent again exactly as it was (same Message-ID, same messages), so a mail system
            # that got it before the stop can tell; later messages go in the next email.
            unread = [r for r in unread if r.email_id == cut_off]
        if await self._rate_limited(recipient, unread, now):
            return Outcome.WAITING
        return await self._send(audience, recipient, unread, now)

    async def _drop(
        self, rows: list[OutboxRow], status: str, now: int, emails: list[OutboxRow] | None = None
    ) -> Outcome:
        if rows:
            await self.store.finish([r.id for r in rows], status, now)
        for email_id in {r.email_id for r in (emails or rows) if r.email_id is not None}:
            await self.store.email_dropped(email_id)
        return Outcome.NOTHING

    async def _read_mark(self, user_id: str, room_id: str) -> int:
        """Up to when the user has read the chat, on any device, as of now."""
        try:
            states = await self.mirror.refresh(UserID(user_id))
        except MatrixRequestError as e:
            if not 400 <= e.http_status < 500:
                raise
            # The homeserver will not sync as this user: what the bridge saw must do.
            states = await self.mirror.chats.user_states(user_id)
        state = states.get(room_id)
        return state.read_ts if state is not None else 0

    async def _rate_limited(self, recipient: Recipient, rows: list[OutboxRow], now: int) -> bool:
        p = self.pacing
        sent = await self.store.sent_since(recipient.user_id, now - p.rate_window_ms)
        if len(sent) < p.rate_limit:
            return False
        retry_at = sent[len(sent) - p.rate_limit] + p.rate_window_ms
        await self.store.postpone([r.id for r in rows], retry_at)
        log.info("Email to %s held back by the rate limit", recipient.user_id)
        return True

    async def _send(
        self, audience: ChatAudience, recipient: Recipient, rows: list[OutboxRow], now: int
    ) -> Outcome:
        practice = await self.directory.get_practice(audience.practice_id)
        if practice is None:
            return await self._drop(rows, "skipped", now)
        rules = model.practice_settings(practice.settings)
        include = bool(rules["email_include_content"][recipient.audience])
        names: dict[str, str] = {}
        for r in rows:
            if r.sender not in names:
                names[r.sender] = await display_name(self.db, r.sender) or "someone"
        views: list[MessageView] = []
        if include:
            gone = []
            for r in rows:
                event = await self.source.get_event(r.room_id, r.event_id)
                view = message_view(names[r.sender], event) if event else None
                if view is None:
                    gone.append(r)  # Redacted or purged meanwhile.
                else:
                    views.append(view)
            if gone:
                await self.store.finish([r.id for r in gone], "skipped", now)
                rows = [r for r in rows if r not in gone]
            if not rows:
                return await self._drop([], "skipped", now, emails=gone)
        email = await self.store.open_email(
            rows, audience.practice_id, new_message_id(self.settings.from_address), now
        )
        senders = list(dict.fromkeys(names[r.sender] for r in rows))
        notification = Notification(
            recipient_name=recipient.name,
            recipient_email=recipient.email,
            practice_name=practice.name,
            timezone=practice.timezone,
            portal_url=self.settings.portal_url,
            from_address=self.settings.from_address,
            message_id=email.message_id,
            sender_names=senders,
            count=len(rows),
            family_members=audience.family_members,
            chat_name=audience.name if audience.kind == "group" else None,
            include_content=include,
            messages=views,
        )
        try:
            message = render(notification, now)
        except (ValueError, MessageError):
            await self._failed(audience, recipient, email, rows, "unusable address")
            return Outcome.NOTHING
        try:
            await self.mailer.send(message)
        except SendError as e:
            return await self._send_failed(audience, recipient, email, rows, e, now)
        await self.store.email_sent(email, rows, self.clock())
        self.metrics.emails.labels("sent").inc()
        self._server_failures = 0
        log.info(
            "Emailed %s about %d message(s) in %s", recipient.user_id, len(rows), audience.room_id
        )
        return Outcome.SENT

    async def _send_failed(
        self,
        audience: ChatAudience,
        recipient: Recipient,
        email: Email,
        rows: list[OutboxRow],
        error: SendError,
        now: int,
    ) -> Outcome:
        attempts = email.attempts + 1
        if error.permanent or attempts >= self.pacing.max_attempts:
            reason = error.reason
            if not error.permanent:
                reason = f"gave up after {attempts} attempts: {reason}"
            await self._failed(audience, recipient, email, rows, reason)
            return Outcome.NOTHING
        retry_at = now + self.pacing.backoff(attempts)
        await self.store.email_retry(email, rows, error.reason, retry_at)
        self.metrics.emails.labels("retry").inc()
        log.warning(
            "Email to %s failed (%s), attempt %d; retrying later",
            recipient.user_id,
            error.reason,
            attempts,
        )
        if error.server:
            self._server_failures += 1
            self._server_retry_at = now + self.pacing.backoff(self._server_failures)
            return Outcome.SERVER_DOWN
        return Outcome.WAITING

    async def _failed(
        self,
        audience: ChatAudience,
        recipient: Recipient,
        email: Email,
        rows: list[OutboxRow],
        reason: str,
    ) -> None:
        await self.store.email_failed(email, rows, reason, self.clock())
        self.metrics.emails.labels("failed").inc()
        await self.audit.record(
            audience.practice_id,
            self.bot,
            "notification.failed",
            recipient.user_id,
            {"chat_id": audience.room_id, "messages": len(rows), "reason": reason},
            effect_key=f"notification.failed:{email.id}",
        )
        log.error("Email to %s failed for good (%s)", recipient.user_id, reason)
