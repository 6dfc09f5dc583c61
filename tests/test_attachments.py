"""The attachment policy, enforced inside Synapse by the media module (practice_bridge_synapse).

Uploads go straight to Synapse's media repository, so every refusal here comes from the real
homeserver with the module loaded (tests/conftest.py): the defaults of example-config.yaml, and
the practice ``smallfiles`` with rules of its own (4 KB, zip files blocked, nothing else).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.identity import escape
from config import ConfigError, generate_config, load_config
from practice_bridge_synapse.media import PracticeMedia, extension_of, sniff
from registration import module_entries
from tests.clients import ApiClient, MatrixClient
from tests.conftest import OWN_ATTACHMENT_RULES
from tests.media import download, media_path, sample_pdf, upload, windows_program

pytestmark = pytest.mark.synapse_workers

TOO_LARGE = "ORG.PRACTICEBRIDGE.ATTACHMENT_TOO_LARGE"
TYPE_BLOCKED = "ORG.PRACTICEBRIDGE.ATTACHMENT_TYPE_BLOCKED"
DEFAULT_MAX = 26214400


async def _chat(api: ApiClient, practice_id: str) -> tuple[MatrixClient, MatrixClient, str]:
    staff, client = await api.staff_and_client(practice_id)
    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert r.status in (200, 201), r.body
    return staff, client, r.body["chat_id"]


async def _media_config(mc: MatrixClient) -> dict[str, Any]:
    r = await mc.request("GET", "/_matrix/client/v1/media/config")
    assert r.status == 200, r.body
    return dict(r.body)


async def test_oversized_upload_is_refused_with_the_practice_limit(
    api: ApiClient, practice_id: str
) -> None:
    await api.setup_practice(practice_id)
    await api.setup_practice(OWN_ATTACHMENT_RULES)
    usual = await api.session_for(practice_id, client_id="c1")
    small = await api.session_for(OWN_ATTACHMENT_RULES, client_id="c1")

    # Each user's media config tells the frontend their practice's policy.
    config = await _media_config(usual)
    assert config["m.upload.size"] == DEFAULT_MAX
    assert "exe" in config["org.practicebridge.blocked_extensions"]
    assert "application/x-msdownload" in config["org.practicebridge.blocked_mimetypes"]
    assert await _media_config(small) == {
        "m.upload.size": 4096,
        "org.practicebridge.blocked_mimetypes": ["application/zip"],
        "org.practicebridge.blocked_extensions": ["zip"],
    }

    r = await upload(small, b"x" * 4097, "text/plain", "notes.txt")
    assert (r.status, r.errcode) == (413, TOO_LARGE)
    assert r.body["max_size"] == 4096
    assert r.body["error"] == (
        "This file is too large: the practice accepts attachments of at most 4 KB."
    )
    r = await upload(small, b"x" * 4096, "text/plain", "notes.txt")
    assert r.status == 200 and r.body["content_uri"].startswith("mxc://"), r.body
    # The same file is fine in a practice with the default limit.
    r = await upload(usual, b"x" * 4097, "text/plain", "notes.txt")
    assert r.status == 200, r.body


@pytest.mark.parametrize(
    ("data", "content_type", "filename", "blocked"),
    [
        (b"binary", "application/x-msdownload", "tool.bin", "application/x-msdownload"),
        (b"binary", "Application/X-MSDownload; charset=binary", None, "application/x-msdownload"),
        (b"binary", "application/octet-stream", "setup.EXE", "exe"),
        (b"echo hi", "text/plain", "cleanup.sh.", "sh"),
        (b"MsgBox 1", "text/plain", "invoice.pdf.vbs", "vbs"),
        (windows_program(), "image/png", "photo.png", "application/x-msdownload"),
        (
            b"\x7fELF\x02\x01\x01" + b"\0" * 64,
            "application/pdf",
            "report.pdf",
            "application/x-executable",
        ),
        (b"#!/bin/sh\nrm -rf ~\n", "text/plain", "notes.txt", "application/x-sh"),
    ],
    ids=[
        "exe-type",
        "exe-type-with-parameters",
        "exe-name",
        "script-name-trailing-dot",
        "double-extension",
        "windows-program-as-png",
        "linux-program-as-pdf",
        "script-as-text",
    ],
)
async def test_blocked_upload_is_refused_by_type_name_or_content(
    api: ApiClient,
    practice_id: str,
    data: bytes,
    content_type: str,
    filename: str | None,
    blocked: str,
) -> None:
    await api.setup_practice(practice_id)
    client = await api.session_for(practice_id, client_id="c1")
    r = await upload(client, data, content_type, filename)
    assert (r.status, r.errcode) == (403, TYPE_BLOCKED), r.body
    assert r.body["blocked"] == blocked
    assert "programs and scripts are blocked" in r.body["error"]


async def test_two_step_upload_is_held_to_the_policy_too(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(practice_id)
    client = await api.session_for(practice_id, client_id="c1")
    r = await client.request("POST", "/_matrix/media/v1/create")
    assert r.status == 200, r.body
    server, media_id = r.body["content_uri"].removeprefix("mxc://").split("/")
    path = f"/_matrix/media/v3/upload/{server}/{media_id}"

    async def upload_to(data: bytes, filename: str, content_type: str) -> tuple[int, Any]:
        """``PUT`` the media's content (the second step)."""
        async with client.session.put(
            client.base + path,
            data=data,
            params={"filename": filename},
            headers={"Authorization": f"Bearer {client.token}", "Content-Type": content_type},
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    status, body = await upload_to(windows_program(), "game.exe", "image/png")
    assert (status, body["errcode"]) == (403, TYPE_BLOCKED)
    status, body = await upload_to(sample_pdf(), "plan.pdf", "application/pdf")
    assert status == 200, body
    got = await download(client, media_path(f"mxc://{server}/{media_id}"))
    assert (got.status, got.body) == (200, sample_pdf())


async def test_a_practice_with_rules_of_its_own(api: ApiClient, practice_id: str) -> None:
    await api.setup_practice(OWN_ATTACHMENT_RULES)
    await api.setup_practice(practice_id)
    small = await api.session_for(OWN_ATTACHMENT_RULES, staff_id="s1")
    usual = await api.session_for(practice_id, staff_id="s1")
    # Its list replaces the default one: scripts pass there, zip files do not.
    r = await upload(small, b"#!/bin/sh\necho hi\n", "application/x-sh", "hello.sh")
    assert r.status == 200, r.body
    r = await upload(small, b"PK\x03\x04", "application/octet-stream", "forms.zip")
    assert (r.status, r.errcode, r.body["blocked"]) == (403, TYPE_BLOCKED, "zip")
    r = await upload(small, b"PK\x03\x04", "application/zip", "forms")
    assert (r.status, r.errcode, r.body["blocked"]) == (403, TYPE_BLOCKED, "application/zip")
    # Everyone else keeps the defaults.
    r = await upload(usual, b"PK\x03\x04", "application/zip", "forms.zip")
    assert r.status == 200, r.body
    r = await upload(usual, b"#!/bin/sh\necho hi\n", "application/x-sh", "hello.sh")
    assert (r.status, r.errcode) == (403, TYPE_BLOCKED)


async def test_media_messages_outside_the_policy_never_reach_the_room(
    api: ApiClient, practice_id: str
) -> None:
    staff, client, room = await _chat(api, practice_id)
    r = await upload(client, b"just text", "text/plain", "notes.txt")
    assert r.status == 200, r.body
    notes = r.body["content_uri"]
    # A script uploaded where scripts are allowed: another practice's file.
    await api.setup_practice(OWN_ATTACHMENT_RULES)
    elsewhere = await api.session_for(OWN_ATTACHMENT_RULES, client_id="c1")
    r = await upload(elsewhere, b"#!/bin/sh\necho hi\n", "application/x-sh", "hello.sh")
    assert r.status == 200, r.body
    foreign = r.body["content_uri"]

    def file(**overrides: Any) -> dict[str, Any]:
        content = {
            "msgtype": "m.file",
            "body": "notes.txt",
            "url": notes,
            "info": {"mimetype": "text/plain", "size": 9},
        }
        return content | overrides

    # The file as it is goes through.
    sent = await client.send(room, file())
    assert sent.status == 200, sent.body
    refused = [
        (file(body="notes.exe"), 403, TYPE_BLOCKED),
        (file(filename="notes.bat", body="Here are my notes"), 403, TYPE_BLOCKED),
        (file(info={"mimetype": "application/x-msdownload", "size": 9}), 403, TYPE_BLOCKED),
        (file(info={"mimetype": "text/plain", "size": DEFAULT_MAX + 1}), 413, TOO_LARGE),
        (file(url=foreign, body="hello.txt"), 403, "M_FORBIDDEN"),
        (
            {
                "msgtype": "m.file",
                "body": "* notes.txt",
                "m.new_content": file(body="notes.cmd"),
                "m.relates_to": {"rel_type": "m.replace", "event_id": sent.body["event_id"]},
            },
            403,
            TYPE_BLOCKED,
        ),
    ]
    for content, status, errcode in refused:
        r = await client.send(room, content)
        assert (r.status, r.errcode) == (status, errcode), (content, r.body)
    # The staff member sees that file and nothing else.
    files = [e for e in await staff.timeline(room) if e["type"] == "m.room.message"]
    assert [(e["event_id"], e["content"]) for e in files] == [(sent.body["event_id"], file())]


async def test_downloads_stay_within_the_practice(
    api: ApiClient, practice_id: str, homeserver: Any
) -> None:
    staff, client, room = await _chat(api, practice_id)
    r = await upload(client, sample_pdf(), "application/pdf", "intake form.pdf")
    assert r.status == 200, r.body
    path = media_path(r.body["content_uri"])
    other_practice = f"{practice_id}x"
    await api.setup_practice(other_practice)
    outsider = await api.session_for(other_practice, staff_id="s1")

    got = await download(staff, path)
    assert (got.status, got.body) == (200, sample_pdf())
    assert got.headers["Content-Type"] == "application/pdf"
    assert "intake%20form.pdf" in got.headers["Content-Disposition"]
    # Outside the practice the file does not exist, by any route.
    missing = await download(outsider, path)
    assert (missing.status, missing.json["errcode"]) == (404, "M_NOT_FOUND")
    thumb = await download(
        outsider, media_path(r.body["content_uri"], "thumbnail"), {"width": "32", "height": "32"}
    )
    assert (thumb.status, thumb.json["errcode"]) == (404, "M_NOT_FOUND")
    legacy = path.replace("/_matrix/client/v1/media/", "/_matrix/media/v3/")
    for who in (outsider, client):
        got = await download(who, legacy, authenticated=False)
        assert (got.status, got.json["errcode"]) == (404, "M_NOT_FOUND")
    # No token: Synapse's own answer. The bot (a server admin) reads everything.
    got = await download(client, path, authenticated=False)
    assert (got.status, got.json["errcode"]) == (401, "M_MISSING_TOKEN")
    bot_token = homeserver.config.appservice.as_token
    got = await download(client, path, token=bot_token)
    assert (got.status, got.body) == (200, sample_pdf())


# -- configuration ---------------------------------------------------------------------------


def test_module_entries_carry_each_practices_complete_rules(tmp_path: Path) -> None:
    config = generate_config(
        tmp_path / "config.yaml",
        **{
            "homeserver.address": "http://127.0.0.1:8008",
            "homeserver.domain": "practice.test",
            "appservice.address": "http://127.0.0.1:29340",
            "attachments.practices": {"Sun_Rise.2": {"max_size": 1000}},
        },
    )
    rules, media, _logins = module_entries(config)
    assert rules["module"] == "practice_bridge_synapse.rules.PracticeRules"
    assert media["module"] == "practice_bridge_synapse.media.PracticeMedia"
    parsed = PracticeMedia.parse_config(media["config"])
    default = parsed["attachments"]["default"]
    assert default["max_size"] == DEFAULT_MAX and "exe" in default["blocked_extensions"]
    # Keyed by the practice as user ids spell it; what the practice leaves out is the default.
    (field,) = parsed["attachments"]["practices"]
    assert field == escape("Sun_Rise.2")
    own = parsed["attachments"]["practices"][field]
    assert own["max_size"] == 1000
    assert own["blocked_extensions"] == default["blocked_extensions"]
    mapper = config.identity_mapper()
    practice_re = re.compile(parsed["practice_regex"])
    for kind in ("staff", "client"):
        match = practice_re.fullmatch(mapper.user_id(kind, "Sun_Rise.2", "Client.7"))
        assert match is not None and match["practice"] == field
    assert practice_re.fullmatch(config.bot_mxid) is None


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"max_size": -5}, "attachments.max_size"),
        ({"max_size": "25MB"}, "attachments.max_size"),
        ({"blocked_extensions": "exe"}, "attachments.blocked_extensions"),
        ({"blocked_extensions": ["ex e"]}, "attachments.blocked_extensions"),
        ({"blocked_mimetypes": ["executable"]}, "attachments.blocked_mimetypes"),
        ({"practices": {"p1": {"max_size": 0}}}, "attachments.practices.p1.max_size"),
        ({"practices": {"p1": {"colour": "red"}}}, "attachments.practices.p1"),
        ({"practices": {"p1": ["exe"]}}, "attachments.practices.p1"),
        ({"practices": {"bad id!": {"max_size": 10}}}, "attachments.practices"),
        ({"practices": ["p1"]}, "attachments.practices"),
    ],
)
def test_bad_attachment_rules_stop_start_up_naming_the_key(
    tmp_path: Path, section: dict[str, Any], key: str
) -> None:
    path = tmp_path / "config.yaml"
    generate_config(
        path,
        **{
            "homeserver.address": "http://127.0.0.1:8008",
            "homeserver.domain": "practice.test",
            "appservice.address": "http://127.0.0.1:29340",
        },
    )
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(path.read_text())
    data["attachments"].update(section)
    with open(path, "w") as f:
        yaml.dump(data, f)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"config key '{key}'"), str(e.value)
    assert e.value.line is not None


@pytest.mark.parametrize(
    ("name", "extension"),
    [
        ("report.pdf", "pdf"),
        ("Setup.EXE", "exe"),
        ("setup.exe. ", "exe"),
        ("archive.tar.gz", "gz"),
        ("C:\\temp\\run.bat", "bat"),
        ("README", None),
        (".bashrc", "bashrc"),
        (None, None),
    ],
)
def test_extension_of_a_file_name(name: str | None, extension: str | None) -> None:
    assert extension_of(name) == extension


def test_content_sniffing_finds_programs_and_scripts_only() -> None:
    assert sniff(windows_program()) == "application/x-msdownload"
    assert sniff(b"\x7fELF\x02") == "application/x-executable"
    assert sniff(b"\xcf\xfa\xed\xfe\x07") == "application/x-mach-binary"
    assert sniff(b"#!/usr/bin/env python3\n") == "application/x-sh"
    # A text that happens to start with MZ is not a program.
    assert sniff(b"MZ tours itinerary: " + b"x" * 100) is None
    assert sniff(sample_pdf()) is None
    assert sniff(b"") is None
