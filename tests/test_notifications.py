"""Email notifications against a real SMTP server (aiosmtpd) and the real Synapse: delayed,
batched per chat, cancelled by reading, content-free unless the practice says otherwise,
family-aware, and sent exactly once through mail server outages and restarts.

The worker's clock is the test's: "after the delay" means the clock moved past it, so nothing
here sleeps for minutes or depends on how fast the machine is.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from mautrix.util.async_db import Database

from bridge.app import Bridge
from bridge.clock import now_ms
from bridge.notifications import SmtpMailer, SmtpSettings
from bridge.notifications.render import NO_CONTENT, NOT_SECURE, message_view, one_line
from config import Config
from registration.homeserver import free_port
from tests.clients import ApiClient, HomeserverInfo, MatrixClient, eventually, processed
from tests.conftest import bridge_config

pytestmark = pytest.mark.synapse_workers

DELAY = 120
PORTAL = "https://portal.sunrise.example/messages"
FROM = "portal@sunrise.example"


# -- a real mail server ---------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class Mailbox:
    """The aiosmtpd handler: keeps what arrives; can refuse recipients or messages."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse_rcpt: str | None = None
        self.refuse_data: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data.pop(0)
        raw = bytes(envelope.original_content)
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, raw))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if r.rcpt_tos == [address]]


class SmtpServer:
    """An aiosmtpd server on a fixed port that can go away and come back."""

    def __init__(self, **kwargs: Any) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self.kwargs = kwargs
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, **self.kwargs
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class Clock:
    """The worker's clock: real time plus however far the test moved it."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return now_ms() + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)


def _mail_config(homeserver: HomeserverInfo, tmp_path: Path, port: int) -> Config:
    config = bridge_config(homeserver, tmp_path)
    notifications = config.notifications
    notifications.delay_seconds = DELAY
    notifications.portal_url = PORTAL
    notifications.smtp.hostname = "127.0.0.1"
    notifications.smtp.port = port
    notifications.smtp.security = "none"
    notifications.smtp.from_address = FROM
    return config


async def _start(config: Any, db: Database, clock: Clock, *, drive: bool = True) -> Bridge:
    bridge = Bridge(config, db=db)
    bridge.notifications.worker.clock = clock
    await bridge.start()
    if drive:
        await bridge.notifications.worker.stop()  # the test sends by hand
    return bridge


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bridge(
    homeserver: HomeserverInfo, database: Database, tmp_path: Path, smtp: SmtpServer, clock: Clock
) -> AsyncIterator[Bridge]:
    """The session's bridge with email on (the API fixture uses this one)."""
    instance = await _start(_mail_config(homeserver, tmp_path, smtp.port), database, clock)
    try:
        yield instance
    finally:
        await instance.stop()


Restart = Callable[..., AbstractAsyncContextManager[Bridge]]


@pytest.fixture
def restart(
    homeserver: HomeserverInfo,
    database_factory: Callable[[], Database],
    tmp_path: Path,
    smtp: SmtpServer,
    clock: Clock,
) -> Restart:
    """Another bridge process on the same database and mail server, once the first stopped:
    ``async with restart(drive=...) as restarted``."""

    @asynccontextmanager
    async def restarted(*, drive: bool = True) -> AsyncIterator[Bridge]:
        folder = tmp_path / "again"
        folder.mkdir()
        config = _mail_config(homeserver, folder, smtp.port)
        instance = await _start(config, database_factory(), clock, drive=drive)
        try:
            yield instance
        finally:
            await instance.stop()

    return restarted


# -- helpers --------------------------------------------------------------------------------


async def _send(bridge: Bridge, who: MatrixClient, room: str, body: str, **content: Any) -> str:
    sent = await who.send(room, {"msgtype": "m.text", "body": body, **content})
    assert sent.status == 200, sent.body
    event_id = str(sent.body["event_id"])
    await processed(bridge.db, event_id)
    return event_id


async def _after_delay(bridge: Bridge, clock: Clock, seconds: float = DELAY + 1) -> int:
    clock.advance(seconds)
    return await bridge.notifications.worker.send_due()


async def _setup(
    api: ApiClient, practice_id: str, clients: tuple[str, ...] = ("c1",)
) -> tuple[MatrixClient, dict[str, MatrixClient], dict[str, str]]:
    """An owner practitioner s1, clients with sessions, and s1's direct chat with each."""
    await api.setup_practice(practice_id, clients=clients, staff=(("s1", "owner"),))
    staff = await api.session_for(practice_id, staff_id="s1")
    sessions, rooms = {}, {}
    for client_id in clients:
        sessions[client_id] = await api.session_for(practice_id, client_id=client_id)
        r = await api.call("POST", "/chats/direct", {"client_id": client_id}, token=staff.token)
        assert r.status in (200, 201), r.body
        rooms[client_id] = r.body["chat_id"]
    return staff, sessions, rooms


async def _include_content(api: ApiClient, owner: MatrixClient, **audiences: bool) -> None:
    r = await api.call(
        "PUT", "/settings", {"practice": {"email_include_content": audiences}}, token=owner.token
    )
    assert r.status == 200, r.body


async def _receipt(who: MatrixClient, room: str, event_id: str, kind: str = "m.read") -> None:
    r = await who.request(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room)}/receipt/{kind}/{quote(event_id)}",
        {},
    )
    assert r.status == 200, r.body


async def _statuses(bridge: Bridge, event_id: str) -> dict[str, str]:
    rows = await bridge.db.fetch(
        "SELECT recipient, status FROM notification_outbox WHERE event_id=$1", event_id
    )
    return {r["recipient"]: r["status"] for r in rows}


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


# -- delay, batching, reading ---------------------------------------------------------------


async def test_client_message_emails_the_practitioner_once_after_the_delay(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)
    event_id = await _send(bridge, clients["c1"], rooms["c1"], "Can we move my appointment?")
    assert await _statuses(bridge, event_id) == {staff.user_id: "pending"}

    assert await bridge.notifications.worker.send_due() == 0  # not yet: the delay runs
    assert smtp.mailbox.received == []

    assert await _after_delay(bridge, clock) == 1
    (mail,) = smtp.mailbox.received
    assert mail.rcpt_tos == ["s1@example.com"] and mail.mail_from == FROM
    msg = mail.message
    assert msg["Subject"] == "New message from Client c1"
    assert msg["To"].addresses[0].addr_spec == "s1@example.com"
    assert msg["From"].addresses[0].addr_spec == FROM
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Message-ID"]
    assert msg.get_content_type() == "multipart/alternative"
    text, markup = _text(msg), _html(msg)
    assert "You have a new message from Client c1 in Sunrise Wellness." in text
    assert PORTAL in text and f'href="{PORTAL}"' in markup
    # Content is left out by default, and so is the "not secure" warning.
    assert "appointment" not in text and "appointment" not in markup
    assert NO_CONTENT in text and NOT_SECURE not in text
    assert list(msg.iter_attachments()) == []

    # Once: another round, or the same event delivered again by the homeserver, sends nothing.
    r = await clients["c1"].request(
        "GET", f"/_matrix/client/v3/rooms/{quote(rooms['c1'])}/event/{quote(event_id)}"
    )
    port = bridge.config.appservice.port
    async with aiohttp.ClientSession() as http:
        resp = await http.put(
            f"http://127.0.0.1:{port}/_matrix/app/v1/transactions/{uuid.uuid4().hex}",
            json={"events": [r.body | {"room_id": rooms["c1"]}]},
            headers={"Authorization": f"Bearer {bridge.config.appservice.hs_token}"},
        )
        assert resp.status == 200
    await bridge.pipeline.wait_idle()
    assert await _after_delay(bridge, clock) == 0
    assert len(smtp.mailbox.received) == 1
    assert await _statuses(bridge, event_id) == {staff.user_id: "sent"}


async def test_reading_before_the_delay_on_any_device_sends_nothing(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id, clients=("c1", "c2", "c3"))
    public = await _send(bridge, clients["c1"], rooms["c1"], "Question one")
    private = await _send(bridge, clients["c2"], rooms["c2"], "Question two")
    answered = await _send(bridge, clients["c3"], rooms["c3"], "Question three")

    # A public receipt reaches the bridge and cancels at once.
    await _receipt(staff, rooms["c1"], public)

    async def cancelled() -> bool:
        return await _statuses(bridge, public) == {staff.user_id: "read"}

    await eventually(cancelled)
    # Answering in the chat is reading it.
    await _send(bridge, staff, rooms["c3"], "Answer three")
    # A private receipt from another device of the practitioner: even when the bridge has not
    # processed it (here: the pipeline is held), the worker sees it through the practitioner's
    # own sync right before sending.
    await bridge.pipeline.stop()
    phone = await api.session_for(practice_id, staff_id="s1")
    await _receipt(phone, rooms["c2"], private, "m.read.private")

    assert await _after_delay(bridge, clock) == 1
    # The practitioner got nothing; the client c3 hears about the answer.
    assert [r.rcpt_tos for r in smtp.mailbox.received] == [["c3@example.com"]]
    assert await _statuses(bridge, private) == {staff.user_id: "read"}
    assert await _statuses(bridge, answered) == {staff.user_id: "read"}
    bridge.pipeline.start()
    await bridge.pipeline.wait_idle()


async def test_three_messages_in_one_chat_make_one_email(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)
    await _include_content(api, staff, staff=True)
    for body in ("First line", "Second line", "Third line"):
        await _send(bridge, clients["c1"], rooms["c1"], body)

    assert await _after_delay(bridge, clock) == 1
    (msg,) = smtp.mailbox.to("s1@example.com")
    assert msg["Subject"] == "3 new messages from Client c1"
    text = _text(msg)
    assert "You have 3 new messages from Client c1 in Sunrise Wellness." in text
    assert text.index("First line") < text.index("Second line") < text.index("Third line")
    assert await _after_delay(bridge, clock) == 0


# -- what an email contains ------------------------------------------------------------------


async def test_content_setting_off_and_on_per_audience(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)
    client, room = clients["c1"], rooms["c1"]
    # On for staff, off for clients.
    await _include_content(api, staff, staff=True, clients=False)
    await _send(bridge, client, room, "My sleep got better this week")
    assert await _after_delay(bridge, clock) == 1
    await _send(bridge, staff, room, "Great news, keep the routine")
    assert await _after_delay(bridge, clock) == 1

    (to_staff,) = smtp.mailbox.to("s1@example.com")
    text, markup = _text(to_staff), _html(to_staff)
    assert "My sleep got better this week" in text and "My sleep got better this week" in markup
    assert NOT_SECURE in text and NOT_SECURE in markup
    assert NO_CONTENT not in text
    (to_client,) = smtp.mailbox.to("c1@example.com")
    text, markup = _text(to_client), _html(to_client)
    assert "You have a new message from Staff s1 in Sunrise Wellness." in text
    assert "keep the routine" not in text and "keep the routine" not in markup
    assert NO_CONTENT in text and NOT_SECURE not in text

    # The other way round.
    await _include_content(api, staff, staff=False, clients=True)
    await _send(bridge, client, room, "Thanks, will do")
    assert await _after_delay(bridge, clock) == 1
    await _send(bridge, staff, room, "See you Tuesday")
    assert await _after_delay(bridge, clock) == 1
    assert "Thanks, will do" not in _text(smtp.mailbox.to("s1@example.com")[1])
    second = smtp.mailbox.to("c1@example.com")[1]
    assert "See you Tuesday" in _text(second) and NOT_SECURE in _text(second)


async def test_hostile_bodies_and_names_arrive_harmless(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)
    await _include_content(api, staff, staff=True)
    # The API keeps names to one line; the email must not rely on it.
    record = await bridge.directory_store.get_client(practice_id, "c1")
    assert record is not None
    hostile_name = "Eve\r\nBcc: victim@example.com\n<img src=x onerror=alert(1)>"
    await bridge.directory_store.upsert_client(dataclasses.replace(record, name=hostile_name))
    await _send(
        bridge,
        clients["c1"],
        rooms["c1"],
        "<script>alert('x')</script>\r\nSubject: free money",
        format="org.matrix.custom.html",
        formatted_body="<a href='https://evil.example'>click</a>",
    )
    file = {
        "msgtype": "m.file",
        "body": "lab-results.pdf",
        "url": "mxc://practice.test/abcdef",
        "info": {"mimetype": "application/pdf", "size": 1234},
    }
    sent = await clients["c1"].send(rooms["c1"], file)
    await processed(bridge.db, sent.body["event_id"])

    assert await _after_delay(bridge, clock) == 1
    (mail,) = smtp.mailbox.received
    assert mail.rcpt_tos == ["s1@example.com"]  # nobody added by a header
    msg = mail.message
    assert msg["Bcc"] is None and msg["Cc"] is None
    for name in ("Subject", "From", "To"):
        assert "\r" not in str(msg[name]) and "\n" not in str(msg[name])
    header_block = mail.raw.decode(errors="replace").split("\r\n\r\n", 1)[0]
    assert not [line for line in header_block.split("\r\n") if line.lower().startswith("bcc")]
    assert str(msg["Subject"]).strip() == one_line("2 new messages from " + hostile_name)
    markup = _html(msg)
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert "<img" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    assert "evil.example" not in markup  # formatted bodies are never used
    # The attachment is named, never attached.
    assert "lab-results.pdf" in _text(msg) and "lab-results.pdf" in markup
    assert list(msg.iter_attachments()) == []
    assert len(mail.raw) < 20_000


# -- who gets what ---------------------------------------------------------------------------


async def test_family_member_chat_emails_the_primary_and_names_the_member(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    await api.setup_practice(practice_id, clients=("parent",), staff=(("s1", "owner"),))
    r = await api.put_client(practice_id, "kid", name="Mia Kid", family_primary_id="parent")
    assert r.status == 201, r.body
    staff = await api.session_for(practice_id, staff_id="s1")
    parent = await api.session_for(practice_id, client_id="parent")
    r = await api.call("POST", "/chats/direct", {"client_id": "kid"}, token=staff.token)
    room = r.body["chat_id"]

    await _send(bridge, staff, room, "How is Mia doing?")
    assert await _after_delay(bridge, clock) == 1
    (mail,) = smtp.mailbox.received
    assert mail.rcpt_tos == ["parent@example.com"]  # the family's primary, never the kid
    assert "This chat is about Mia Kid." in _text(mail.message)

    # The primary answers for the family member: the practitioner's email names the member too.
    await _send(bridge, parent, room, "Much better, thank you")
    assert await _after_delay(bridge, clock) == 1
    (to_staff,) = smtp.mailbox.to("s1@example.com")
    assert "from Client parent" in _text(to_staff)
    assert "This chat is about Mia Kid." in _text(to_staff)


async def test_no_email_for_automatic_replies_to_their_writer(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)
    client, room = clients["c1"], rooms["c1"]
    auto = {"enabled": True, "message": "I am away until Monday.", "periods": []}
    r = await api.call("PUT", "/settings", {"autoresponder": auto}, token=staff.token)
    assert r.status == 200, r.body
    await _send(bridge, client, room, "Hello?")
    await bridge.autoresponses.send_due()

    async def reply() -> str | None:
        r = await client.request(
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room)}/messages",
            params={"dir": "b", "limit": "20"},
        )
        found = [
            e["event_id"]
            for e in r.body["chunk"]
            if "org.practicebridge.auto_reply" in e.get("content", {})
        ]
        return found[0] if found else None

    reply_id = await eventually(reply)
    await processed(bridge.db, reply_id)
    assert await _statuses(bridge, reply_id) == {}

    # The practitioner, who is away, still hears about the client's message.
    assert await _after_delay(bridge, clock) == 1
    assert [r.rcpt_tos for r in smtp.mailbox.received] == [["s1@example.com"]]


async def test_preferences_and_revoked_access_decide_who_gets_email(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id, clients=("c1", "c2", "c3"))
    # c1 turned email alerts off.
    r = await api.call("PUT", "/settings", {"email_alerts": False}, token=clients["c1"].token)
    assert r.status == 200, r.body
    off = await _send(bridge, staff, rooms["c1"], "Note for c1")
    assert await _statuses(bridge, off) == {}
    # c2 loses portal access after the message was written, before the email is due.
    revoked = await _send(bridge, staff, rooms["c2"], "Note for c2")
    assert await _statuses(bridge, revoked) == {clients["c2"].user_id: "pending"}
    r = await api.put_client(practice_id, "c2", portal_access=False)
    assert r.status == 200, r.body
    # c3 keeps everything: only c3 gets an email.
    await _send(bridge, staff, rooms["c3"], "Note for c3")

    assert await _after_delay(bridge, clock) == 1
    assert [r.rcpt_tos for r in smtp.mailbox.received] == [["c3@example.com"]]
    assert await _statuses(bridge, revoked) == {clients["c2"].user_id: "skipped"}
    # Nor for anything later in the revoked client's chat.
    later = await _send(bridge, staff, rooms["c2"], "Another note")
    assert await _statuses(bridge, later) == {}
    assert await _after_delay(bridge, clock) == 0


# -- sending: outages, failures, limits, restarts --------------------------------------------


async def test_mail_server_down_then_up_every_email_arrives_once(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id, clients=("c1", "c2"))
    smtp.stop()
    first = await _send(bridge, clients["c1"], rooms["c1"], "One")
    second = await _send(bridge, clients["c2"], rooms["c2"], "Two")
    assert await _after_delay(bridge, clock) == 0
    assert await bridge.notifications.worker.send_due() == 0  # backing off, not hammering
    emails = await bridge.db.fetch("SELECT status, attempts FROM notification_email")
    assert [(e["status"], e["attempts"]) for e in emails] == [("retry", 1)]
    assert await _statuses(bridge, first) == {staff.user_id: "pending"}
    assert await _statuses(bridge, second) == {staff.user_id: "pending"}

    smtp.start()
    assert await _after_delay(bridge, clock, 3600) == 2
    assert await _after_delay(bridge, clock, 3600) == 0
    subjects = sorted(str(m["Subject"]) for m in smtp.mailbox.to("s1@example.com"))
    assert subjects == ["New message from Client c1", "New message from Client c2"]


async def test_a_mail_server_that_defers_is_retried_with_the_same_message_id(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)
    smtp.mailbox.refuse_data = ["451 4.3.0 Try again later"]
    event_id = await _send(bridge, clients["c1"], rooms["c1"], "Hello")
    assert await _after_delay(bridge, clock) == 0
    message_id = await bridge.db.fetchval("SELECT message_id FROM notification_email")
    assert await _statuses(bridge, event_id) == {staff.user_id: "pending"}

    assert await _after_delay(bridge, clock, 3600) == 1
    (mail,) = smtp.mailbox.received
    assert mail.message["Message-ID"] == message_id
    row = await bridge.db.fetchrow("SELECT status, attempts FROM notification_email")
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_permanent_failure_is_recorded_and_audited_once(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)
    smtp.mailbox.refuse_rcpt = "550 5.1.1 No such mailbox"
    event_id = await _send(bridge, clients["c1"], rooms["c1"], "Hello")
    assert await _after_delay(bridge, clock) == 0
    assert await _statuses(bridge, event_id) == {staff.user_id: "failed"}
    smtp.mailbox.refuse_rcpt = None
    assert await _after_delay(bridge, clock, 3600) == 0
    assert smtp.mailbox.received == []

    r = await api.call("GET", "/audit", token=staff.token)
    assert r.status == 200, r.body
    entries = r.body["entries"]
    (failed,) = [e for e in entries if e["action"] == "notification.failed"]
    assert failed["target"] == staff.user_id
    assert failed["details"]["chat_id"] == rooms["c1"] and "550" in failed["details"]["reason"]


async def test_rate_limit_holds_back_and_later_sends(
    api: ApiClient, practice_id: str, bridge: Bridge, smtp: SmtpServer, clock: Clock
) -> None:
    staff, clients, rooms = await _setup(api, practice_id, clients=("c1", "c2"))
    bridge.notifications.worker.pacing.rate_limit = 1  # one email per recipient and hour
    await _send(bridge, clients["c1"], rooms["c1"], "One")
    held = await _send(bridge, clients["c2"], rooms["c2"], "Two")
    assert await _after_delay(bridge, clock) == 1
    assert await _statuses(bridge, held) == {staff.user_id: "pending"}
    assert await _after_delay(bridge, clock, 60) == 0  # still inside the hour
    assert await _after_delay(bridge, clock, 3600) == 1
    assert len(smtp.mailbox.to("s1@example.com")) == 2


async def test_restart_with_pending_and_retrying_rows_sends_each_email_once(
    api: ApiClient,
    practice_id: str,
    bridge: Bridge,
    smtp: SmtpServer,
    clock: Clock,
    restart: Restart,
) -> None:
    staff, clients, rooms = await _setup(api, practice_id, clients=("c1", "c2"))
    # c1's email fails once while the mail server is down; c2's is still waiting its delay.
    smtp.stop()
    await _send(bridge, clients["c1"], rooms["c1"], "One")
    assert await _after_delay(bridge, clock) == 0
    message_id = await bridge.db.fetchval("SELECT message_id FROM notification_email")
    await _send(bridge, clients["c2"], rooms["c2"], "Two")
    await bridge.stop()  # the bridge goes away with both rows pending
    smtp.start()

    clock.advance(3600 + DELAY)
    async with restart(drive=False) as restarted:

        async def both() -> bool:
            return len(smtp.mailbox.received) >= 2

        await eventually(both)  # the worker's own loop sends them
        await restarted.notifications.worker.stop()
        assert await _after_delay(restarted, clock, 3600) == 0
    mails = smtp.mailbox.to("s1@example.com")
    assert sorted(str(m["Subject"]) for m in mails) == [
        "New message from Client c1",
        "New message from Client c2",
    ]
    assert [m["Message-ID"] for m in mails if "c1" in str(m["Subject"])] == [message_id]


class _Killed(BaseException):
    """The process dying (not an error the worker could handle)."""


async def test_dying_while_handing_over_an_email_sends_it_once_after_restart(
    api: ApiClient,
    practice_id: str,
    bridge: Bridge,
    smtp: SmtpServer,
    clock: Clock,
    restart: Restart,
) -> None:
    staff, clients, rooms = await _setup(api, practice_id)

    class Dying:
        async def send(self, message: EmailMessage) -> None:
            raise _Killed  # the email was opened, the mail server never took it

    bridge.notifications.worker.mailer = Dying()
    await _send(bridge, clients["c1"], rooms["c1"], "Hello")
    with pytest.raises(_Killed):
        await _after_delay(bridge, clock)
    email = await bridge.db.fetchrow("SELECT status, message_id FROM notification_email")
    assert email["status"] == "sending"
    await bridge.stop()

    async with restart() as restarted:
        assert await _after_delay(restarted, clock) == 1
        assert await _after_delay(restarted, clock) == 0
    (mail,) = smtp.mailbox.received
    assert mail.message["Message-ID"] == email["message_id"]


async def test_a_resend_after_dying_is_the_same_email_and_later_messages_wait_for_the_next(
    api: ApiClient,
    practice_id: str,
    bridge: Bridge,
    smtp: SmtpServer,
    clock: Clock,
    restart: Restart,
) -> None:
    """The mail server took the email, then the bridge died before writing that down: the
    restarted bridge sends that email again unchanged (same Message-ID, same messages), and a
    message that arrived meanwhile goes in an email of its own."""
    staff, clients, rooms = await _setup(api, practice_id)
    real = bridge.notifications.worker.mailer

    class AcceptedThenDied:
        async def send(self, message: EmailMessage) -> None:
            await real.send(message)
            raise _Killed

    bridge.notifications.worker.mailer = AcceptedThenDied()
    await _send(bridge, clients["c1"], rooms["c1"], "First words")
    with pytest.raises(_Killed):
        await _after_delay(bridge, clock)
    await _send(bridge, clients["c1"], rooms["c1"], "Second words")
    await bridge.stop()

    async with restart() as restarted:
        assert await _after_delay(restarted, clock) == 1
        assert await _after_delay(restarted, clock) == 1
        assert await _after_delay(restarted, clock) == 0
    first, resent, second = (m.message for m in smtp.mailbox.received)
    assert resent["Message-ID"] == first["Message-ID"]
    assert _text(resent) == _text(first)
    assert second["Message-ID"] != first["Message-ID"]
    assert "2 new messages" not in _text(resent) + _text(second)


async def test_login_at_the_mail_server(
    api: ApiClient, practice_id: str, bridge: Bridge, clock: Clock
) -> None:
    """A mail server that requires a login gets the configured one."""

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        login = (data.login, data.password) if isinstance(data, LoginPassword) else None
        return AuthResult(success=login == (b"mailer", b"s3cret"))

    secure = SmtpServer(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    secure.start()
    try:
        settings = SmtpSettings.from_config(bridge.config)
        bridge.notifications.worker.mailer = SmtpMailer(
            dataclasses.replace(settings, port=secure.port, username="mailer", password="s3cret")
        )
        staff, clients, rooms = await _setup(api, practice_id)
        await _send(bridge, clients["c1"], rooms["c1"], "Hello")
        assert await _after_delay(bridge, clock) == 1
        assert [r.rcpt_tos for r in secure.mailbox.received] == [["s1@example.com"]]
    finally:
        secure.stop()


# -- unread counts for a badge ------------------------------------------------------------------


async def test_chat_list_reports_unread_counts_per_chat(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    staff, clients, rooms = await _setup(api, practice_id, clients=("c1", "c2"))
    for body in ("a", "b", "c"):
        last = await _send(bridge, clients["c1"], rooms["c1"], body)
    await _send(bridge, clients["c2"], rooms["c2"], "x")
    redacted = await _send(bridge, clients["c2"], rooms["c2"], "oops")
    r = await clients["c2"].request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(rooms['c2'])}/redact/{quote(redacted)}/{uuid.uuid4().hex}",
        {},
    )
    assert r.status == 200, r.body
    await processed(bridge.db, r.body["event_id"])

    async def counts(who: MatrixClient) -> dict[str, int]:
        r = await api.call("GET", "/chats", token=who.token)
        assert r.status == 200, r.body
        return {c["chat_id"]: c["unread_count"] for c in r.body["chats"]}

    assert await counts(staff) == {rooms["c1"]: 3, rooms["c2"]: 1}
    assert await counts(clients["c1"]) == {rooms["c1"]: 0}  # their own messages
    await _receipt(staff, rooms["c1"], last, "m.read.private")
    # (A private receipt reaches the bridge through the practitioner's followed sync, a moment
    # after Synapse stored it.)

    async def read_up() -> bool:
        return await counts(staff) == {rooms["c1"]: 0, rooms["c2"]: 1}

    assert await eventually(read_up), await counts(staff)
    await _send(bridge, staff, rooms["c2"], "Got it")
    assert await counts(staff) == {rooms["c1"]: 0, rooms["c2"]: 0}
    assert await counts(clients["c2"]) == {rooms["c2"]: 1}


async def test_unread_counts_for_two_thousand_chats_in_one_call(bridge: Bridge) -> None:
    """Only messages from others after each chat's own read mark count; bot messages never."""
    rows = [(f"$e{i}", f"!room{i % 2000}:x", "@other:x", 1000 + i) for i in range(10_000)]
    rows += [
        ("$mine", "!room0:x", "@me:x", 99_999),
        ("$bot", "!room0:x", bridge.az.bot_mxid, 99_999),
    ]
    await bridge.db.executemany(
        "INSERT INTO chat_message (event_id, room_id, sender, ts) VALUES ($1, $2, $3, $4)", rows
    )
    marks = {f"!room{i}:x": 6000 for i in range(2000)}
    marks["!room1999:x"] = 0
    counts = await bridge.notifications.index.unread_counts("@me:x", marks)
    # Room r holds messages i = r, r+2000, ..., r+8000 at ts 1000+i; after 6000 means i > 5000.
    assert counts["!room0:x"] == 2 and counts["!room1000:x"] == 2
    assert counts["!room1001:x"] == 3 and counts["!room1999:x"] == 5
    assert len(counts) == 2000 and sum(counts.values()) == 1001 * 2 + 998 * 3 + 5
    # A badge needs no more than "999+": counting stops there.
    busy = [(f"$b{i}", "!busy:x", "@other:x", 10 + i) for i in range(1200)]
    await bridge.db.executemany(
        "INSERT INTO chat_message (event_id, room_id, sender, ts) VALUES ($1, $2, $3, $4)", busy
    )
    assert await bridge.notifications.index.unread_counts("@me:x", {"!busy:x": 0}) == {
        "!busy:x": 999
    }


# -- rendering, without a server ----------------------------------------------------------------


def test_header_values_lose_every_kind_of_line_break() -> None:
    for breaker in ("\r", "\n", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x00"):
        assert one_line(f"Eve{breaker}Bcc: x@example.com") in (
            "Eve Bcc: x@example.com",
            "EveBcc: x@example.com",
        )
    assert len(one_line("x" * 500)) == 200


def test_redacted_messages_and_attachments_as_emails_show_them() -> None:
    redacted = {"type": "m.room.message", "content": {}, "origin_server_ts": 1}
    assert message_view("Sam", redacted) is None
    image = {
        "type": "m.room.message",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.image", "body": "Look at this", "filename": "rash.jpg"},
    }
    view = message_view("Sam", image)
    assert view is not None and (view.attachment, view.text) == ("rash.jpg", "Look at this")


def test_a_reply_in_an_email_is_what_was_typed_not_the_quoted_original() -> None:
    reply = {
        "type": "m.room.message",
        "origin_server_ts": 1,
        "content": {
            "msgtype": "m.text",
            "body": "> <@dana:example.org> Drink water\n> every day\n\nThanks, will do!",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$original"}},
        },
    }
    view = message_view("Sam", reply)
    assert view is not None and view.text == "Thanks, will do!"
    # A message that only looks like a quote is shown as written.
    quote = {"type": "m.room.message", "origin_server_ts": 1, "content": {"body": "> a quote"}}
    view = message_view("Sam", quote | {"content": {"msgtype": "m.text", "body": "> a quote"}})
    assert view is not None and view.text == "> a quote"
