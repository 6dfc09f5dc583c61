"""Handing an email to the practice's mail server (aiosmtplib), and what a failure means.

A failure is *permanent* when the server refuses this recipient or this message with a 5xx
answer: retrying would give the same answer. Everything else (server down or unreachable,
timeouts, 4xx answers, a login the server refuses) is *transient*: the email waits and is tried
again, so a mail server that is away for a while loses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Protocol

import aiosmtplib

if TYPE_CHECKING:
    from config import Config
    from config.schema import Smtp

log = logging.getLogger("practice.mailer")


@dataclass(frozen=True)
class SmtpSettings:
    hostname: str
    port: int
    security: str  # none | starttls | tls
    username: str
    password: str
    from_address: str
    timeout: float = 30.0

    @classmethod
    def from_section(cls, smtp: Smtp) -> SmtpSettings:
        return cls(**smtp.model_dump())

    @classmethod
    def from_config(cls, config: Config) -> SmtpSettings:
        return cls.from_section(config.notifications.smtp)

    @property
    def enabled(self) -> bool:
        return bool(self.hostname)


class SendError(Exception):
    """Sending failed; ``reason`` is short and safe to store (never content)."""

    def __init__(self, reason: str, *, permanent: bool = False, server: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        # The server itself is down or refuses everyone: no other email gets through now.
        self.server = server


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver to the mail server or raise :class:`SendError`."""


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.hostname,
                port=s.port,
                username=s.username or None,
                password=s.password or None,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                timeout=s.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = sorted({r.code for r in e.recipients})
            permanent = bool(codes) and all(code >= 500 for code in codes)
            reason = f"recipient refused ({'/'.join(map(str, codes))})"
            raise SendError(reason, permanent=permanent) from None
        except aiosmtplib.SMTPRecipientRefused as e:
            raise SendError(f"recipient refused ({e.code})", permanent=e.code >= 500) from None
        except aiosmtplib.SMTPDataError as e:
            raise SendError(f"message refused ({e.code})", permanent=e.code >= 500) from None
        except aiosmtplib.SMTPAuthenticationError as e:
            log.error("The mail server refused the login (%d); check notifications.smtp", e.code)
            raise SendError(f"login refused ({e.code})", server=True) from None
        except (aiosmtplib.SMTPConnectResponseError, aiosmtplib.SMTPHeloError) as e:
            raise SendError(f"{type(e).__name__} ({e.code})", server=True) from None
        except aiosmtplib.SMTPResponseException as e:
            raise SendError(f"{type(e).__name__} ({e.code})") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise SendError(type(e).__name__, server=True) from None
