"""Email notifications (docs/notifications.md): a durable outbox written by the pipeline, and a
worker that sends what is still unread after the delay, one email per chat, through the practice's
SMTP server. Also the message index behind unread counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mautrix.api import HTTPAPI
from mautrix.util.async_db import Database

from bridge.audit import AuditLog
from bridge.chats.userstate import UserStateMirror
from bridge.directory import DirectoryStore
from bridge.identity import IdentityMapper
from bridge.metrics import Metrics

from .index import MessageIndex
from .mailer import Mailer, SendError, SmtpMailer, SmtpSettings
from .outbox import NotificationOutbox
from .source import BotMessageSource
from .store import OutboxStore
from .worker import EmailSettings, NotificationWorker, Pacing

if TYPE_CHECKING:
    from config.schema import Notifications as NotificationsConfig


class Notifications:
    """The parts, wired from the ``notifications`` section of the config. Email is off while
    ``smtp.hostname`` is empty: then no outbox rows are written and no worker runs, but the
    message index (unread counts) is kept, and pruned, all the same."""

    def __init__(
        self,
        config: NotificationsConfig,
        db: Database,
        mapper: IdentityMapper,
        directory: DirectoryStore,
        mirror: UserStateMirror,
        audit: AuditLog,
        bot_api: Callable[[], HTTPAPI],
        *,
        mailer: Mailer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        smtp = SmtpSettings.from_section(config.smtp)
        self.enabled = smtp.enabled
        self.index = MessageIndex(db, mapper.bot_mxid)
        self.outbox = NotificationOutbox(
            mapper,
            mirror.chats,
            delay_ms=config.delay_seconds * 1000,
            enabled=smtp.enabled,
        )
        self.store = OutboxStore(db)
        self.worker = NotificationWorker(
            db,
            self.store,
            self.index,
            directory,
            mirror,
            BotMessageSource(bot_api),
            mailer or SmtpMailer(smtp),
            audit,
            EmailSettings(config.portal_url, smtp.from_address),
            mapper.bot_mxid,
            sending=smtp.enabled,
            metrics=metrics or Metrics(),
        )

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()


__all__ = [
    "EmailSettings",
    "Mailer",
    "MessageIndex",
    "NotificationOutbox",
    "NotificationWorker",
    "Notifications",
    "OutboxStore",
    "Pacing",
    "SendError",
    "SmtpMailer",
    "SmtpSettings",
]
