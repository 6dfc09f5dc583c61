"""The portal Messenger in real headless Chromium against the real Synapse and bridge.

A practitioner's page (Anna, the owner) and a client's page (Maria, the primary of a family with
her son Leo) side by side, each a stand-in portal on its own origin that embeds the Messenger
with one script: every feature of the Messages page, seen from the other side. The tests share
one bridge, one practice and one browser, in order (each builds on the chats the ones before
made), so that the browser work stays lean in CI time. They run on SQLite only: what they prove
is the browser side; the database legs of the same API are the other tests' work.

Screenshots go to ``$PRACTICE_BRIDGE_SCREENSHOTS`` when it is set (``docs/`` refreshes the
ones the documentation shows), else to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import re
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.db import create_database
from registration.homeserver import free_port
from tests.browser import browser_missing, chromium, portal_server, screenshot_path
from tests.clients import ApiClient, HomeserverInfo, MatrixClient, eventually
from tests.conftest import bridge_config

MISSING = browser_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"{MISSING} did not run")

WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
STAFF = (("anna", "Dr. Anna Berg", "owner"), ("tom", "Tom Reyes", "team_member"))
CLIENTS = (
    ("maria", "Maria Lopez", None),
    ("leo", "Leo Lopez", "maria"),
    ("sam", "Sam Okafor", None),
)


@dataclass
class World:
    """One bridge, one practice, one browser, the portal's origin; pages opened so far."""

    api: ApiClient
    bridge: Bridge
    browser: Any
    portal: str
    practice_id: str
    shots: Path
    pages: dict[str, Any] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def name(self, who: str) -> str:
        names = {sid: name for sid, name, _ in STAFF} | {cid: n for cid, n, _ in CLIENTS}
        return names[who]

    async def session(self, who: str) -> dict[str, Any]:
        kind = "staff_id" if who in {s for s, _, _ in STAFF} else "client_id"
        body = await self.api.ok("POST", f"/practices/{self.practice_id}/sessions", {kind: who})
        self.sessions[who] = body
        return dict(body)

    def matrix(self, who: str) -> MatrixClient:
        s = self.sessions[who]
        return MatrixClient(
            self.api.homeserver.url, s["access_token"], s["user_id"], self.api.session
        )

    async def open(
        self,
        who: str,
        *,
        layout: str = "page",
        viewport: dict[str, int] = WIDE,
        key: str = "",
        offline_sync: bool = False,
    ) -> Any:
        """A portal page of ``who`` with the Messenger mounted: (page, the frame's locator).
        ``offline_sync`` keeps the page's /sync from ever reaching Synapse (a page that has
        not heard of a change yet)."""
        key = key or who
        if key in self.pages:
            await self.pages[key][0].close()
        mobile = viewport["width"] < 600
        context = await self.browser.new_context(
            viewport=viewport, is_mobile=mobile, has_touch=mobile, accept_downloads=True
        )
        if offline_sync:
            await context.route("**/_matrix/client/v3/sync?*", lambda route: route.abort())
        page = await context.new_page()
        page.on("pageerror", lambda e: self.state.setdefault("errors", []).append(str(e)))
        await page.goto(self.portal + "/")
        session = await self.session(who)
        await page.evaluate(
            "([s, l, n]) => mountMessenger(s, l, n)", [session, layout, self.name(who)]
        )
        frame = page.frame_locator("iframe")
        await frame.locator(".chat-list").wait_for(state="attached")
        self.pages[key] = (context, page, frame)
        return page, frame

    async def shot(self, page: Any, name: str) -> None:
        await page.mouse.move(0, 0)  # no hover toolbar in the picture
        await page.wait_for_timeout(300)  # let a last animation frame and images settle
        await page.screenshot(path=str(screenshot_path(name, self.shots)))


@pytest.fixture(scope="module")
async def world(
    homeserver: HomeserverInfo, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    from playwright.async_api import expect

    expect.set_options(timeout=30_000)  # generous: a loaded machine is slow, not wrong
    tmp = tmp_path_factory.mktemp("messenger")
    port = free_port()
    config = bridge_config(homeserver, tmp)
    config.provisioning.cors_origins = [f"http://127.0.0.1:{port}"]
    bridge = Bridge(config, db=create_database(f"sqlite:{tmp / 'bridge.db'}"))
    await bridge.start()
    api = ApiClient(config, homeserver)
    bridge_url = f"http://127.0.0.1:{config.appservice.port}"
    try:
        async with portal_server(port, bridge_url) as portal, chromium() as browser:
            practice_id = f"p{uuid.uuid4().hex[:10]}"
            await setup_practice(api, practice_id)
            yield World(api, bridge, browser, portal, practice_id, tmp)
    finally:
        await api.close()
        await bridge.stop()


async def setup_practice(api: ApiClient, practice_id: str) -> None:
    p = f"/practices/{practice_id}"
    await api.ok("PUT", p, {"name": "Sunrise Wellness", "plan": "team", "timezone": "UTC"})
    for staff_id, name, role in STAFF:
        await api.ok(
            "PUT",
            f"{p}/staff/{staff_id}",
            {"name": name, "email": f"{staff_id}@example.com", "role": role},
        )
    for client_id, name, primary in CLIENTS:
        await api.ok(
            "PUT",
            f"{p}/clients/{client_id}",
            {
                "name": name,
                "email": f"{primary or client_id}@example.com",
                "activated": True,
                "portal_access": True,
                "family_primary_id": primary,
            },
        )


def png(width: int, height: int) -> bytes:
    """A small real PNG (a teal and white gradient), made here."""
    rows = b"".join(
        b"\x00"
        + b"".join(
            bytes((20 + 200 * x // width, 120 + 100 * y // height, 110 + 120 * x // width))
            for x in range(width)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def message(frame: Any, text: str) -> Any:
    return frame.locator(".msg", has=frame.locator(".body", has_text=text)).last


async def send(frame: Any, text: str, key: str = "Enter") -> None:
    box = frame.locator(".composer-text")
    await box.fill(text)
    await box.press(key)


# Anna's Enter key makes a new line once she has chosen so in the settings.
NEWLINE_MODE = "Shift+Enter"


# -- the tests, in order ---------------------------------------------------------------------


async def test_practitioner_starts_a_chat_and_both_sides_send_and_receive(world: World) -> None:
    from playwright.async_api import expect

    _, anna = await world.open("anna")
    maria_page, maria = await world.open("maria")
    await anna.locator(".views .view-contacts").click()
    await anna.locator(".section-clients .contact-name", has_text="Maria Lopez").click()
    await expect(anna.locator(".chat-title")).to_have_text("Maria Lopez")
    await send(anna, "Hello Maria, how are you feeling today?")
    await expect(anna.locator(".msg.own .body")).to_have_text(
        "Hello Maria, how are you feeling today?"
    )

    row = maria.locator(".chat-row", has_text="Dr. Anna Berg")
    await expect(row.locator(".unread-badge")).to_have_text("1")
    await expect(maria_page).to_have_title(re.compile(r"^\(1\) Sunrise Wellness"))
    await row.locator(".chat-open").click()
    await expect(maria.locator(".msg.other .body")).to_have_text(
        "Hello Maria, how are you feeling today?"
    )
    await send(maria, "Much better, thank you.")
    await expect(anna.locator(".msg.other .body", has_text="Much better")).to_be_visible()
    await expect(maria_page).to_have_title("Sunrise Wellness")
    assert not world.state.get("errors"), world.state.get("errors")


async def test_read_marker_shows_for_the_practitioner_only(world: World) -> None:
    from playwright.async_api import expect

    anna = world.pages["anna"][2]
    maria = world.pages["maria"][2]
    # Maria's page sent a public receipt when it showed Anna's message.
    mine = anna.locator(".msg.own", has_text="how are you feeling")
    await expect(mine.locator(".receipt")).to_be_visible()
    await expect(mine.locator(".receipt")).to_have_text("R")
    await expect(maria.locator(".msg.own")).to_have_count(1)
    assert await maria.locator(".receipt").count() == 0


async def test_reply_quotes_the_original_and_reactions_toggle(world: World) -> None:
    from playwright.async_api import expect

    anna, maria = world.pages["anna"][2], world.pages["maria"][2]
    original = maria.locator(".msg.other", has_text="how are you feeling")
    await original.hover()
    await original.locator(".act-reply").click()
    await expect(maria.locator(".reply-bar")).to_contain_text("Dr. Anna Berg")
    await send(maria, "See you on Tuesday!")
    reply = anna.locator(".msg.other", has_text="See you on Tuesday!")
    await expect(reply.locator(".quote-sender")).to_have_text("Dr. Anna Berg")
    await expect(reply.locator(".quote-text")).to_have_text(
        "Hello Maria, how are you feeling today?"
    )
    await expect(reply.locator(".body")).to_have_text("See you on Tuesday!")

    await reply.hover()
    await reply.locator(".act-react").click()
    await anna.locator(".reaction-picker .pick[data-key='👍']").click()
    on_maria = maria.locator(".msg.own", has_text="See you on Tuesday!").locator(".reaction")
    await expect(on_maria).to_have_count(1)
    await expect(on_maria.locator(".reaction-key")).to_have_text("👍")
    await expect(on_maria.locator(".reaction-count")).to_have_text("1")
    await expect(reply.locator(".reaction.mine")).to_have_count(1)
    # Clicking one's own reaction takes it back, on both sides.
    await reply.locator(".reaction.mine").click()
    await expect(on_maria).to_have_count(0)
    await expect(reply.locator(".reaction")).to_have_count(0)


async def test_documents_photos_and_voice_notes_reach_the_other_side(world: World) -> None:
    from playwright.async_api import expect

    anna = world.pages["anna"][2]
    maria_page, maria = world.pages["maria"][1], world.pages["maria"][2]
    await anna.locator(".file-input").set_input_files(
        files=[{"name": "Nutrition plan.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    card = maria.locator(".msg.other .file-card", has_text="Nutrition plan.pdf")
    await expect(card).to_be_visible()
    async with maria_page.expect_download() as download_info:
        await card.locator(".file-download").click()
    download = await download_info.value
    assert download.suggested_filename == "Nutrition plan.pdf"
    assert await asyncio.to_thread(Path(await download.path()).read_bytes) == PDF

    photo = png(240, 160)
    await maria.locator(".file-input").set_input_files(
        files=[{"name": "knee.png", "mimeType": "image/png", "buffer": photo}]
    )
    img = anna.locator(".msg.other img.photo")
    await expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    assert await img.evaluate("(i) => i.decode().then(() => i.naturalWidth)") == 240

    # The attachment policy's refusal, as the homeserver says it.
    await maria.locator(".file-input").set_input_files(
        files=[{"name": "setup.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}]
    )
    await expect(maria.locator(".composer-error")).to_have_text(
        ".exe files cannot be sent in this practice's chats: programs and scripts are blocked."
    )

    # A voice note recorded in the browser (Chromium's fake microphone), played on the other
    # side from the same bytes.
    await maria.locator(".record").click()
    await expect(maria.locator(".recording")).to_be_visible()
    await maria_page.wait_for_timeout(1200)
    await maria.locator(".rec-send").click()
    voice = anna.locator(".msg.other .voice.is-voice")
    await expect(voice).to_be_visible()
    await voice.locator(".voice-play").click()
    await expect(voice.locator(".voice-play.playing")).to_be_visible()
    # The panel lists the chat's documents on both sides.
    for frame in (anna, maria):
        await expect(frame.locator(".doc-list .doc-name")).to_contain_text(
            ["knee.png", "Nutrition plan.pdf"]
        )


async def test_staff_pin_a_message_and_both_see_the_panel(world: World) -> None:
    from playwright.async_api import expect

    anna = world.pages["anna"][2]
    maria = world.pages["maria"][2]
    target = anna.locator(".msg.other", has_text="Much better, thank you.")
    await target.hover()
    await target.locator(".act-pin").click()
    await expect(anna.locator(".pinned-list .pinned-text")).to_have_text(
        ["Much better, thank you."]
    )
    await expect(maria.locator(".pinned-list .pinned-text")).to_have_text(
        ["Much better, thank you."]
    )
    await expect(maria.locator(".msg.pinned .body")).to_have_text("Much better, thank you.")
    # Clients see the pins, not the action.
    assert await maria.locator(".act-pin, .pinned-item .unpin").count() == 0
    await anna.locator(".views .view-chats").click()
    first = anna.locator(".msg", has_text="how are you feeling").first
    await first.evaluate("(el) => el.scrollIntoView({block: 'start'})")
    await world.shot(world.pages["anna"][1], "chat-pinned-panel")


async def test_the_tab_docks_expands_and_minimises(world: World) -> None:
    from playwright.async_api import expect

    page, tab = await world.open("anna", layout="tab", key="anna-tab")
    box = page.locator(".practice-messenger")
    await expect(tab.locator(".tab-bar")).to_be_visible()
    assert (await box.bounding_box())["width"] == 380
    # The most recent chat opens by itself (the setting's default), one screen at a time.
    await expect(tab.locator(".chat-title")).to_have_text("Maria Lopez")
    await expect(tab.locator(".chat-list")).to_be_hidden()
    await world.shot(page, "tab")
    await tab.locator(".tab-expand").click()
    await expect(box).to_have_attribute("data-state", "expanded")
    expanded = await box.bounding_box()
    assert (expanded["width"], expanded["height"]) == (WIDE["width"], WIDE["height"])
    await expect(tab.locator(".chat-list")).to_be_visible()  # wide enough for both
    await tab.locator(".tab-minimise").click()
    await expect(box).to_have_attribute("data-state", "minimised")
    assert (await box.bounding_box())["height"] == 48
    await expect(tab.locator(".chat-title")).to_be_hidden()
    await tab.locator(".tab-title").click()
    await expect(box).to_have_attribute("data-state", "docked")
    assert await page.evaluate("() => messenger.state") == "docked"
    await world.pages.pop("anna-tab")[0].close()


async def test_a_client_deletes_her_own_message(world: World) -> None:
    from playwright.async_api import expect

    anna, maria = world.pages["anna"][2], world.pages["maria"][2]
    await send(maria, "Sorry, wrong chat")
    mine = maria.locator(".msg.own", has_text="Sorry, wrong chat")
    await mine.hover()
    await mine.locator(".act-delete").click()
    await maria.locator(".dialog button.danger").click()
    await expect(maria.locator(".msg.own.deleted").last).to_contain_text(
        "This message was deleted"
    )
    await expect(anna.locator(".msg.other.deleted")).to_have_text(
        re.compile("This message was deleted")
    )
    assert await anna.locator(".body", has_text="Sorry, wrong chat").count() == 0
    # Nobody deletes someone else's message: no such action is offered.
    assert await maria.locator(".msg.other .act-delete").count() == 0


async def test_a_hostile_message_body_shows_as_text(world: World) -> None:
    from playwright.async_api import expect

    anna = world.pages["anna"][2]
    maria = world.pages["maria"][2]
    hostile = '<img src=x onerror="parent.pwned=1"><script>parent.pwned=1</script>'
    await send(maria, hostile)
    await expect(anna.locator(".msg.other .body", has_text="<script>")).to_have_text(hostile)
    # A formatted body from another Matrix client: only the allow-list survives.
    room = world.state.setdefault("room", await current_room(anna))
    client = world.matrix("maria")
    sent = await client.send(
        room,
        {
            "msgtype": "m.text",
            "body": "Plain version",
            "format": "org.matrix.custom.html",
            "formatted_body": '<b>Bold</b> <a href="javascript:parent.pwned=1">link</a>'
            '<img src=x onerror="parent.pwned=1"><iframe src="https://example.com"></iframe>'
            "<script>parent.pwned=1</script>",
        },
    )
    assert sent.status == 200, sent.body
    formatted = anna.locator(".msg.other .body.formatted").last
    await expect(formatted.locator("b")).to_have_text("Bold")
    assert await formatted.locator("img, script, iframe").count() == 0
    assert await formatted.locator("a").get_attribute("href") is None
    await world.pages["anna"][1].wait_for_timeout(300)
    for page in (world.pages["anna"][1], world.pages["maria"][1]):
        assert await page.evaluate("() => window.pwned") is None
        assert await page.frames[1].evaluate("() => window.pwned") is None


def chat_row(frame: Any, name: str) -> Any:
    """The list's row of the chat named exactly ``name``."""
    exact = re.compile(f"^{re.escape(name)}$")
    return frame.locator(".chat-row", has=frame.locator(".chat-name", has_text=exact))


async def current_room(frame: Any) -> str:
    row = frame.locator(".chat-row.active")
    return str(await row.get_attribute("data-chat-id"))


async def test_settings_are_saved_and_in_force(world: World) -> None:
    from playwright.async_api import expect

    anna = world.pages["anna"][2]
    maria = world.pages["maria"][2]
    await anna.locator(".views .view-settings").click()
    settings = anna.locator(".settings")
    await expect(settings.locator("h2")).to_have_text("Telehealth & Messaging")
    await settings.locator("input[name=enter_key][value=newline]").check()
    await settings.locator("input[name=client_message_limit]").fill("40")
    await settings.locator("input[name=autoresponder_enabled]").check()
    await settings.locator("textarea[name=autoresponder_message]").fill(
        "Thank you for your message. I answer on weekdays."
    )
    await settings.locator(".add-period").click()
    await settings.evaluate("(el) => el.scrollTo(0, 0)")
    await world.shot(world.pages["anna"][1], "settings")
    await settings.locator(".save").click()
    await expect(settings.locator(".saved")).to_be_visible()
    saved = await world.api.ok("GET", "/settings", token=world.sessions["anna"]["access_token"])
    assert saved["enter_key"] == "newline"
    assert saved["practice"]["client_message_limit"] == 40
    assert saved["autoresponder"]["periods"] == [{"day": "sat", "start": "00:00", "end": "24:00"}]

    # The practice's limit reaches the client's counter through the chat's policy state.
    counter = maria.locator(".counter")
    await expect(counter).to_have_text("0 / 40")
    await maria.locator(".composer-text").fill("x" * 41)
    await expect(counter).to_have_text("41 / 40")
    await expect(counter).to_have_class(re.compile("over"))
    await expect(maria.locator(".composer .send")).to_be_disabled()
    at_limit = "Exactly forty characters, counted right."
    assert len(at_limit) == 40
    await send(maria, at_limit)
    await expect(anna.locator(".body", has_text=at_limit)).to_have_count(0)  # settings shown
    await anna.locator(".views .view-chats").click()
    await anna.locator(".chat-row", has_text="Maria Lopez").locator(".chat-open").click()
    await expect(anna.locator(".msg.other .body", has_text=at_limit)).to_be_visible()

    # The Enter key as Anna chose: a new line; Shift+Enter sends.
    box = anna.locator(".composer-text")
    await box.fill("Line one")
    await box.press("Enter")
    await box.type("Line two")
    assert await box.input_value() == "Line one\nLine two"
    await box.press("Shift+Enter")
    await expect(maria.locator(".msg.other .body", has_text="Line two")).to_have_text(
        "Line one\nLine two"
    )


async def test_a_message_over_the_limit_shows_the_refusal(world: World) -> None:
    from playwright.async_api import expect

    # A page that has not heard of the lower limit yet: the homeserver refuses, and the page
    # shows its sentence.
    _, stale = await world.open("maria", key="maria-stale", offline_sync=True)
    await stale.locator(".chat-row", has_text="Dr. Anna Berg").locator(".chat-open").click()
    await expect(stale.locator(".counter")).to_have_text("0 / 40")
    room = await current_room(stale)
    anna_token = world.sessions["anna"]["access_token"]
    await world.api.ok(
        "PUT", "/settings", {"practice": {"client_message_limit": 20}}, token=anna_token
    )
    client = world.matrix("maria")

    async def lowered() -> bool:
        r = await client.request(
            "GET", f"/_matrix/client/v3/rooms/{room}/state/org.practicebridge.policy/"
        )
        return r.body.get("client_message_limit") == 20

    await eventually(lowered)
    await send(stale, "Thirty characters, give or take")
    await expect(stale.locator(".composer-error")).to_have_text(
        "This message is too long: the practice allows at most 20 characters."
    )
    # The live page has the new limit already.
    await expect(world.pages["maria"][2].locator(".counter")).to_have_text("0 / 20")
    await world.pages.pop("maria-stale")[0].close()
    await world.api.ok(
        "PUT", "/settings", {"practice": {"client_message_limit": 500}}, token=anna_token
    )


async def test_chat_list_pin_unread_hide_and_delete(world: World) -> None:
    from playwright.async_api import expect

    anna = world.pages["anna"][2]
    await anna.locator(".views .view-contacts").click()
    await anna.locator(".section-clients .contact-name", has_text="Sam Okafor").click()
    await expect(anna.locator(".chat-title")).to_have_text("Sam Okafor")
    await send(anna, "Welcome to the practice, Sam!", NEWLINE_MODE)
    await anna.locator(".views .view-chats").click()
    rows = anna.locator(".chat-row .chat-name")
    await expect(rows).to_have_text(["Sam Okafor", "Maria Lopez"])

    maria_row = anna.locator(".chat-row", has_text="Maria Lopez")
    await maria_row.locator(".star").click()
    await expect(rows).to_have_text(["Maria Lopez", "Sam Okafor"])
    await expect(maria_row.locator(".star")).to_have_attribute("aria-pressed", "true")

    sam_row = anna.locator(".chat-row", has_text="Sam Okafor")
    await sam_row.locator(".chat-menu").click()
    await anna.locator(".menu button", has_text="Mark as unread").click()
    await expect(sam_row).to_have_class(re.compile("unread"))
    await anna.locator(".filter", has_text="Unread messages").click()
    await expect(rows).to_have_text(["Sam Okafor"])
    await anna.locator(".filter", has_text="All").click()

    await sam_row.locator(".chat-menu").click()
    await anna.locator(".menu button", has_text="Hide").click()
    await expect(rows).to_have_text(["Maria Lopez"])
    await anna.locator(".show-hidden").check()
    await expect(anna.locator(".chat-row.is-hidden .chat-name")).to_have_text("Sam Okafor")
    await anna.locator(".show-hidden").uncheck()
    # Opening the client from the contacts brings the hidden chat back.
    await anna.locator(".views .view-contacts").click()
    await anna.locator(".section-clients .contact-name", has_text="Sam Okafor").click()
    await expect(anna.locator(".chat-title")).to_have_text("Sam Okafor")
    await anna.locator(".views .view-chats").click()
    await expect(rows).to_have_text(["Maria Lopez", "Sam Okafor"])

    await sam_row.locator(".chat-menu").click()
    await anna.locator(".menu button", has_text="Delete chat").click()
    await expect(anna.locator(".dialog")).to_contain_text("deleted for everyone")
    await anna.locator(".dialog button.danger").click()
    await expect(rows).to_have_text(["Maria Lopez"])
    sam = await world.session("sam")
    assert (await world.api.ok("GET", "/chats", token=sam["access_token"]))["chats"] == []


async def test_a_shared_chat_and_choosing_between_chats(world: World) -> None:
    from playwright.async_api import expect

    anna = world.pages["anna"][2]
    await anna.locator(".chat-row", has_text="Maria Lopez").locator(".chat-open").click()
    await anna.locator(".chat-head .chat-menu").click()
    await anna.locator(".menu button", has_text="Share with a team member").click()
    await anna.locator(".dialog select").select_option(label="Tom Reyes")
    await anna.locator(".dialog button.primary").click()
    await expect(anna.locator(".toast")).to_have_text("The chat is shared.")
    tom = await world.session("tom")
    own = await world.api.ok(
        "POST",
        "/chats/direct",
        {"client_id": "maria", "create_new": True},
        token=tom["access_token"],
    )
    _, page = await world.open("tom")
    await page.locator(".views .view-contacts").click()
    await page.locator(".section-clients .contact-name", has_text="Maria Lopez").click()
    await expect(page.locator(".dialog .candidate")).to_have_count(2)
    await expect(page.locator(".dialog")).to_contain_text("Dr. Anna Berg's chat, shared with you")
    await expect(page.locator(".dialog")).to_contain_text("Your chat")
    await page.locator(".dialog .candidate", has_text="Dr. Anna Berg").click()
    await expect(page.locator(".msg .body", has_text="how are you feeling")).to_be_visible()
    assert await current_room(page) != own["chat_id"]
    await world.pages.pop("tom")[0].close()


async def test_a_family_members_chat_goes_through_the_primary(world: World) -> None:
    from playwright.async_api import expect

    anna, maria = world.pages["anna"][2], world.pages["maria"][2]
    await anna.locator(".views .view-contacts").click()
    await anna.locator(".family-member .contact-name", has_text="Leo Lopez").click()
    await expect(anna.locator(".chat-title")).to_have_text("Leo Lopez")
    await expect(anna.locator(".chat-subtitle")).to_have_text(
        "Family member · answered by Maria Lopez"
    )
    await send(anna, "How is Leo's knee this week?", NEWLINE_MODE)
    row = maria.locator(".chat-row", has_text="about Leo Lopez")
    await expect(row.locator(".chat-name")).to_have_text("Dr. Anna Berg")
    await row.locator(".chat-open").click()
    await expect(maria.locator(".chat-subtitle")).to_have_text("about Leo Lopez")
    await expect(maria.locator(".msg.other .body")).to_have_text("How is Leo's knee this week?")
    await send(maria, "Much better since Monday.")
    await expect(anna.locator(".msg.other .body")).to_have_text("Much better since Monday.")
    await expect(anna.locator(".msg.other .sender")).to_have_text("Maria Lopez")
    await anna.locator(".views .view-chats").click()
    await world.shot(world.pages["anna"][1], "page")


async def test_history_pages_back_as_the_person_scrolls(world: World) -> None:
    from playwright.async_api import expect

    anna, maria = world.pages["anna"][2], world.pages["maria"][2]
    room = await current_room(anna)  # Leo's chat
    staff = world.matrix("anna")
    for n in range(1, 61):
        sent = await staff.send(room, {"msgtype": "m.text", "body": f"Exercise note {n}"})
        assert sent.status == 200, sent.body
    await expect(maria.locator(".body", has_text="Exercise note 60")).to_be_visible()
    # Another chat, then this one again: it opens on its latest page.
    await chat_row(maria, "Tom Reyes").locator(".chat-open").click()
    await expect(maria.locator(".chat-title")).to_have_text("Tom Reyes")
    await maria.locator(".chat-row", has_text="about Leo").locator(".chat-open").click()
    await expect(maria.locator(".body", has_text="Exercise note 60")).to_be_visible()
    first = maria.locator(".body", has_text=re.compile(r"^How is Leo's knee"))
    assert await first.count() == 0  # further back than one page
    for _ in range(10):
        if await first.count():
            break
        await maria.locator(".scroller").evaluate("(el) => { el.scrollTop = 0; }")
        await world.pages["maria"][1].wait_for_timeout(300)
    await expect(first).to_have_count(1)
    await expect(maria.locator(".history-status")).to_have_text(
        "This is the beginning of the chat."
    )


async def test_staff_start_a_group_and_export_a_chat(world: World) -> None:
    from playwright.async_api import expect

    anna_page, anna = world.pages["anna"][1], world.pages["anna"][2]
    await anna.locator(".views .view-contacts").click()
    await anna.locator(".new-group").click()
    dialog = anna.locator(".dialog")
    await dialog.locator(".group-name").fill("Knee recovery group")
    await dialog.locator("input[data-kind=client][data-id=maria]").check()
    await dialog.locator("input[data-kind=staff][data-id=tom]").check()
    await dialog.locator("button.primary").click()
    await expect(anna.locator(".chat-title")).to_have_text("Knee recovery group")
    await expect(anna.locator(".chat-subtitle")).to_contain_text("Maria Lopez")
    await send(anna, "Welcome to the group!", NEWLINE_MODE)
    await expect(
        world.pages["maria"][2].locator(".chat-row", has_text="Knee recovery group")
    ).to_be_visible()

    await anna.locator(".views .view-chats").click()
    await chat_row(anna, "Maria Lopez").locator(".chat-menu").click()
    async with anna_page.expect_download() as download_info:
        await anna.locator(".menu button", has_text="Export").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert data[:2] == b"PK"  # an xlsx is a zip


async def test_on_a_phone_the_list_and_the_chat_are_two_screens(world: World) -> None:
    from playwright.async_api import expect

    page, phone = await world.open("maria", viewport=PHONE, key="maria-phone")
    # "Open the most recent chat" is on by default: the page opens on it.
    await expect(phone.locator(".chat-title")).to_be_visible()
    await phone.locator(".chat .back").click()
    await expect(phone.locator(".chat-list")).to_be_visible()
    await world.shot(page, "phone-list")
    await phone.locator(".chat-row", has_text="about Leo").locator(".chat-open").click()
    await expect(phone.locator(".chat-list")).to_be_hidden()
    for control in (".composer .attach", ".composer .send", ".composer-text"):
        found = await phone.locator(control).bounding_box()
        assert found is not None and found["x"] >= 0, control
        assert found["x"] + found["width"] <= PHONE["width"], control
        assert found["y"] + found["height"] <= PHONE["height"], control
    await phone.locator(".composer .attach").click()
    await expect(phone.locator(".attach-menu button", has_text="Take a photo")).to_be_visible()
    await phone.locator(".attach-menu button", has_text="Take a photo").click()
    await phone.locator(".camera-input").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png(180, 120)}]
    )
    await expect(phone.locator(".msg.own img.photo")).to_have_attribute(
        "src", re.compile("^blob:")
    )
    await world.shot(page, "phone-chat")
    await world.pages.pop("maria-phone")[0].close()


async def test_an_ended_session_shows_signed_out(world: World) -> None:
    from playwright.async_api import expect

    page, maria = world.pages["maria"][1], world.pages["maria"][2]
    client = {
        "name": "Maria Lopez",
        "email": "maria@example.com",
        "activated": True,
        "portal_access": False,
        "family_primary_id": None,
    }
    await world.api.ok("PUT", f"/practices/{world.practice_id}/clients/maria", client)
    await expect(maria.locator(".signed-out h2")).to_have_text("You are signed out of messaging")
    assert await page.evaluate("() => window.signedOut") is True
    await expect(page).to_have_title("Sunrise Wellness")
    assert not world.state.get("errors"), world.state.get("errors")
