"""What a portal frontend does beyond JSON requests: uploads, downloads, /sync, sample files."""

from __future__ import annotations

import io
import json
import struct
import wave
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from multidict import CIMultiDictProxy

from tests.clients import MatrixClient, Reply, eventually


@dataclass
class Download:
    status: int
    body: bytes
    headers: CIMultiDictProxy[str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


async def upload(
    mc: MatrixClient, data: bytes, content_type: str, filename: str | None = None
) -> Reply:
    """``POST /_matrix/media/v3/upload`` as the frontend does: raw bytes, type, file name."""
    params = {"filename": filename} if filename is not None else None
    async with mc.session.post(
        mc.base + "/_matrix/media/v3/upload",
        data=data,
        params=params,
        headers={"Authorization": f"Bearer {mc.token}", "Content-Type": content_type},
    ) as resp:
        return Reply(resp.status, await resp.json(content_type=None))


def media_path(mxc: str, kind: str = "download") -> str:
    server, _, media_id = mxc.removeprefix("mxc://").partition("/")
    return f"/_matrix/client/v1/media/{kind}/{quote(server)}/{quote(media_id)}"


async def download(
    mc: MatrixClient,
    path: str,
    params: dict[str, str] | None = None,
    *,
    authenticated: bool = True,
    token: str | None = None,
) -> Download:
    """GET a media path with the session's token (or ``token``, or none at all)."""
    headers = {"Authorization": f"Bearer {token or mc.token}"} if authenticated else {}
    async with mc.session.get(mc.base + path, params=params, headers=headers) as resp:
        return Download(resp.status, await resp.read(), resp.headers)


async def event(mc: MatrixClient, room: str, event_id: str) -> dict[str, Any]:
    """The event as ``mc`` reads it (``GET /rooms/{room}/event/{id}``)."""
    r = await mc.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}")
    assert r.status == 200, r.body
    return dict(r.body)


@dataclass
class Syncer:
    """An incremental /sync of one session, as a frontend keeps it running."""

    mc: MatrixClient
    since: str | None = None
    rooms: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    async def poll(self) -> None:
        params = {"timeout": "0"}
        if self.since:
            params["since"] = self.since
        r = await self.mc.request("GET", "/_matrix/client/v3/sync", params=params)
        assert r.status == 200, r.body
        self.since = r.body["next_batch"]
        for room_id, room in (r.body.get("rooms", {}).get("join") or {}).items():
            seen = self.rooms.setdefault(
                room_id, {"timeline": [], "ephemeral": [], "account_data": []}
            )
            for section in seen:
                seen[section].extend((room.get(section) or {}).get("events") or [])

    def events(self, room: str, section: str = "timeline") -> list[dict[str, Any]]:
        return self.rooms.get(room, {}).get(section, [])

    async def wait_for_event(self, room: str, event_id: str) -> dict[str, Any]:
        """Sync until the event is in the room's timeline; return it."""
        found: dict[str, Any] = await self.wait_for(
            room, lambda events: next((e for e in events if e.get("event_id") == event_id), None)
        )
        return found

    async def wait_for(self, room: str, check: Any, section: str = "timeline") -> Any:
        """Sync until ``check(events of the section)`` is truthy; return what it returned."""

        async def step() -> Any:
            await self.poll()
            return check(self.events(room, section))

        return await eventually(step)


def receipts_of(events: list[dict[str, Any]], receipt_type: str) -> dict[str, dict[str, Any]]:
    """``{user: {event_id, ts}}`` of one receipt type in ephemeral ``m.receipt`` events."""
    found: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.get("type") != "m.receipt":
            continue
        for event_id, kinds in ev["content"].items():
            for user, data in (kinds.get(receipt_type) or {}).items():
                found[user] = {"event_id": event_id, **data}
    return found


# -- sample files ----------------------------------------------------------------------------


def sample_pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\n"
        b"trailer <</Root 1 0 R>>\n%%EOF\n"
    )


def sample_png(width: int = 32, height: int = 24) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 140, 90)).save(out, "PNG")
    return out.getvalue()


def sample_wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    """A short tone, as a recorded voice note."""
    import math

    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def windows_program() -> bytes:
    """The start of a Windows executable: a DOS header pointing at a PE header."""
    head = bytearray(b"MZ" + b"\0" * 126)
    head[0x3C:0x40] = (0x80).to_bytes(4, "little")
    return bytes(head) + b"PE\0\0" + b"\0" * 256
