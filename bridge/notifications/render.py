"""Notification emails: plain text and HTML, content-free unless the practice says otherwise.

Everything that comes from people (names, message bodies, file names, chat names) is treated as
hostile: header values lose every line break and control character, the HTML part escapes all
of it, and attachments are only ever named, never attached.
"""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from practice_bridge_synapse.content import is_reply, strip_reply_fallback

MAX_TEXT = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
ATTACHMENT_TYPES = frozenset({"m.file", "m.image", "m.audio", "m.video"})
NOT_SECURE = (
    "Email is not secure: anyone with access to this mailbox, or to the mail on its way, can "
    "read the messages above. Do not reply to this email; answer in the portal."
)
NO_CONTENT = (
    "For your privacy this email does not show the message. Read it in the portal, where it is "
    "kept secure."
)


@dataclass
class MessageView:
    """One message as an email shows it (only when content is included)."""

    sender_name: str
    ts: int
    text: str | None = None
    attachment: str | None = None


@dataclass
class Notification:
    recipient_name: str
    recipient_email: str
    practice_name: str
    timezone: str
    portal_url: str
    from_address: str
    message_id: str
    sender_names: list[str]
    count: int
    family_members: list[str] = field(default_factory=list)
    chat_name: str | None = None
    include_content: bool = False
    messages: list[MessageView] = field(default_factory=list)


def one_line(value: str, limit: int = 200) -> str:
    """A value fit for a header or a name in running text: no line breaks, no control chars."""
    value = _LINE_BREAKS.sub(" ", value)
    value = _CONTROL.sub("", value)
    value = _SPACES.sub(" ", value).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def body_text(value: str) -> str:
    """A message body for display: line breaks kept (as \\n), other control characters gone."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _CONTROL.sub("", value)
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def message_view(sender_name: str, event: dict[str, Any]) -> MessageView | None:
    """How a fetched event reads in an email; None for one that has nothing left (redacted)."""
    content = event.get("content")
    ts = event.get("origin_server_ts")
    if not isinstance(content, dict) or not content or not isinstance(ts, int):
        return None
    view = MessageView(sender_name, ts)
    event_type = event.get("type")
    body = content.get("body") if isinstance(content.get("body"), str) else None
    if event_type == "m.sticker":
        view.text = "(a sticker)"
    elif event_type == "m.room.encrypted":
        view.text = "(an encrypted message)"
    elif content.get("msgtype") in ATTACHMENT_TYPES:
        filename = content.get("filename") if isinstance(content.get("filename"), str) else None
        view.attachment = one_line(filename or body or "a file")
        if filename and body and body != filename:
            view.text = body_text(body)  # A caption.
    elif content.get("msgtype") == "m.location":
        view.text = "(a location)"
    elif body is not None:
        view.text = body_text(strip_reply_fallback(body) if is_reply(content) else body)
    else:
        return None
    return view


def _names(names: list[str]) -> str:
    names = [one_line(n, 80) for n in names] or ["someone"]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _time(ts: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts / 1000, zone).strftime("%a %d %b %Y, %H:%M")


def new_message_id(from_address: str) -> str:
    """A Message-ID in the sender's domain, unguessable, kept by the email across retries."""
    domain = one_line(from_address.rpartition("@")[2]) or "practice-bridge.invalid"
    return f"<{secrets.token_hex(16)}.notify@{domain}>"


def subject(n: Notification) -> str:
    senders = _names(n.sender_names)
    if n.count == 1:
        return one_line(f"New message from {senders}")
    return one_line(f"{n.count} new messages from {senders}")


def _summary(n: Notification) -> str:
    what = "a new message" if n.count == 1 else f"{n.count} new messages"
    line = f"You have {what} from {_names(n.sender_names)} in {one_line(n.practice_name)}"
    if n.include_content and n.chat_name:
        line += f', in the chat "{one_line(n.chat_name)}"'
    return line + "."


def _family(n: Notification) -> str | None:
    if not n.family_members:
        return None
    return f"This chat is about {_names(n.family_members)}."


def plain_text(n: Notification) -> str:
    zone = _zone(n.timezone)
    parts = [f"Hello {one_line(n.recipient_name)},", "", _summary(n)]
    family = _family(n)
    if family:
        parts.append(family)
    parts.append("")
    if n.include_content:
        for m in n.messages:
            parts.append(f"{one_line(m.sender_name)}, {_time(m.ts, zone)}:")
            if m.text:
                parts.append(m.text)
            if m.attachment:
                parts.append(f"[Attachment: {m.attachment}]")
            parts.append("")
    parts += ["Read and reply in the portal:", n.portal_url, ""]
    parts.append(NOT_SECURE if n.include_content else NO_CONTENT)
    parts.append("")
    parts.append("You receive this email because email alerts are on in your portal settings.")
    return "\n".join(parts) + "\n"


def html_text(n: Notification) -> str:
    e = html.escape
    zone = _zone(n.timezone)
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"></head>',
        '<body style="font-family: sans-serif; line-height: 1.4">',
        f"<p>Hello {e(one_line(n.recipient_name))},</p>",
        f"<p>{e(_summary(n))}</p>",
    ]
    family = _family(n)
    if family:
        out.append(f"<p>{e(family)}</p>")
    if n.include_content:
        for m in n.messages:
            out.append('<div style="border-left: 3px solid #ccc; padding-left: 8px">')
            out.append(
                f"<p><strong>{e(one_line(m.sender_name))}</strong>, {e(_time(m.ts, zone))}</p>"
            )
            if m.text:
                out.append(f'<p style="white-space: pre-wrap">{e(m.text)}</p>')
            if m.attachment:
                out.append(f"<p>Attachment: {e(m.attachment)}</p>")
            out.append("</div>")
    out.append(f'<p><a href="{e(n.portal_url)}">Read and reply in the portal</a></p>')
    out.append(f"<p><em>{e(NOT_SECURE if n.include_content else NO_CONTENT)}</em></p>")
    out.append(
        '<p style="color: #666; font-size: small">You receive this email because email alerts '
        "are on in your portal settings.</p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(n: Notification, now_ms: int) -> EmailMessage:
    """The email, ready for SMTP. Raises ValueError for an address that cannot be used."""
    msg = EmailMessage()
    msg["From"] = Address(display_name=one_line(n.practice_name, 80), addr_spec=n.from_address)
    msg["To"] = Address(
        display_name=one_line(n.recipient_name, 80), addr_spec=one_line(n.recipient_email)
    )
    msg["Subject"] = subject(n)
    msg["Date"] = format_datetime(datetime.fromtimestamp(now_ms / 1000, UTC))
    msg["Message-ID"] = n.message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(plain_text(n))
    msg.add_alternative(html_text(n), subtype="html")
    return msg
