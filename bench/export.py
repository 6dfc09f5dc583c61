"""Exporting a long chat: time, rows per second, waiting on Synapse, peak memory, against a naive
openpyxl workbook of the same rows built in memory.

What is measured: chats of 10,000 and 100,000 messages in a real Synapse (SQLite), written with
the appservice's timestamp massaging (``?ts=``, two years of history) by a practitioner and a
client: text of varied length with non-Latin text and emoji, attachments every 50th message,
replies every 100th, then reactions (one per 100 messages), edits (one per 200) and deletions
(one per 1,000) sent after them, as they come in life. Each export runs in a fresh process
(``--child``) so that peak memory (``ru_maxrss``) is comparable between sizes and approaches:

- **export**: the real :class:`bridge.export.ExportService`, xlsx (and csv) to a file: total
  time, rows per second, the share of that time spent waiting for Synapse's pages, peak memory;
- **naive**: the same prepared export, its rows collected in a list, then an ordinary
  ``openpyxl.Workbook()`` (not write-only) built from them and saved; in that process, with the
  same rows, the export's own xlsx writer is timed too: the spreadsheet-writing side alone.

Ratios are from one run. Targets: peak memory under 150 MB and flat from 10k to 100k; at least
3 times the naive approach's rows per second on the writing side.

    python bench/export.py [--sizes 10000 100000] [--keep DIR] [--smoke]

``--keep DIR`` keeps Synapse's data and the bridge database there and reuses them next time
(filling 100,000 messages takes a few minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

import aiohttp
from mautrix.types import RoomID
from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.table import script_main  # noqa: E402
from bridge.chats import layout  # noqa: E402
from bridge.chats.models import Chat  # noqa: E402
from bridge.db import create_database  # noqa: E402
from bridge.directory import DirectoryStore  # noqa: E402
from bridge.directory.models import Client, Practice, Staff  # noqa: E402
from bridge.identity import IdentityMapper  # noqa: E402
from config import generate_config  # noqa: E402
from registration import generate_registration  # noqa: E402
from registration.homeserver import LocalSynapse, SynapseSpec, free_port  # noqa: E402

DOMAIN = "bench.test"
PRACTICE = "bench"
ZONE = "Europe/Berlin"
TARGET_PEAK_MB = 150
TARGET_WRITER_RATIO = 3.0
# Sends in flight while filling. Synapse gives a new event at most 10 prev_events, so more
# concurrent sends than that leave forward extremities behind faster than they merge: the room's
# DAG widens without bound and every send gets slower (and the database balloons).
CONCURRENCY = 8
_V3 = "/_matrix/client/v3"
_WORDS = (
    "appointment tomorrow breathing exercise thank you dosage sleep better pain week "
    "Grüße こんにちは Привет 👍 🙏 ☀️ plan notes question follow-up"
).split()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000], help="messages per chat"
    )
    parser.add_argument("--keep", help="keep Synapse's data and the database here, and reuse")


# -- the homeserver and the chats ------------------------------------------------------------


class Homeserver:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_path = root / "state.json"
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        )
        self.synapse: LocalSynapse | None = None

    def start(self) -> None:
        if not self.state:
            port = free_port()
            config = generate_config(
                self.root / "config.yaml",
                **{
                    "homeserver.address": f"http://127.0.0.1:{port}",
                    "homeserver.domain": DOMAIN,
                    "appservice.address": "http://127.0.0.1:9",
                    "appservice.port": free_port(),
                },
            )
            registration_path = self.root / "registration.yaml"
            generate_registration(config, registration_path)
            yaml = YAML()
            registration = yaml.load(registration_path)
            registration["url"] = None  # nothing receives transactions: no bridge runs
            yaml.dump(registration, registration_path)
            # No federation here: without this Synapse still works out, for every event, what
            # it would send to other servers, which slows filling 100,000 messages to a crawl.
            no_federation: dict[str, Any] = {"federation_sender_instances": []}
            SynapseSpec(DOMAIN, port, registration_path, None, fast=True).write(
                self.root / "synapse", no_federation
            )
            self.state = {
                "url": f"http://127.0.0.1:{port}",
                "as_token": config.appservice.as_token,
                "template": config.appservice.username_template,
                "bot_username": config.appservice.bot_username,
                "db": str(self.root / "bridge.db"),
                "rooms": {},
            }
            self.save()
        self.analyze()
        self.synapse = LocalSynapse(
            self.root / "synapse" / "homeserver.yaml", self.root / "hs.log"
        )
        self.synapse.start()

    def analyze(self) -> None:
        """Give SQLite's planner statistics, as PostgreSQL keeps them by itself: without them it
        finds each page's latest edits (the bundled ``m.replace``) by scanning the whole room
        for every message of the page, and a long chat pages in quadratic time."""
        path = self.root / "synapse" / "homeserver.db"
        if path.exists():
            with sqlite3.connect(path) as db:
                db.execute("ANALYZE")

    def save(self) -> None:
        self.state_path.write_text(json.dumps(self.state, indent=1))

    def stop(self) -> None:
        if self.synapse is not None:
            self.synapse.stop()

    @property
    def mapper(self) -> IdentityMapper:
        return IdentityMapper(self.state["template"], DOMAIN, self.state["bot_username"])


class Filler:
    """Writes a chat's history through the appservice API, as the practice's people."""

    def __init__(self, hs: Homeserver, session: aiohttp.ClientSession) -> None:
        self.hs = hs
        self.session = session
        mapper = hs.mapper
        self.bot = mapper.bot_mxid
        self.staff = mapper.user_id("staff", PRACTICE, "s1")
        self.client = mapper.user_id("client", PRACTICE, "c1")
        self.rng = random.Random(7)

    async def call(
        self, method: str, path: str, body: Any, user: str | None = None, ts: int | None = None
    ) -> dict[str, Any]:
        params = {}
        if user:
            params["user_id"] = user
        if ts is not None:
            params["ts"] = str(ts)
        for attempt in range(5):
            async with self.session.request(
                method,
                self.hs.state["url"] + path,
                json=body,
                params=params,
                headers={"Authorization": f"Bearer {self.hs.state['as_token']}"},
            ) as resp:
                data: dict[str, Any] = await resp.json(content_type=None)
                if resp.status < 400 or data.get("errcode") == "M_USER_IN_USE":
                    return data
                if resp.status != 429 and resp.status < 500 or attempt == 4:
                    raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    async def prepare(self) -> None:
        for user in (self.bot, self.staff, self.client):
            await self.call(
                "POST",
                f"{_V3}/register",
                {"type": "m.login.application_service", "username": user[1:].split(":")[0]},
            )
        db = create_database(f"sqlite:{self.hs.state['db']}")
        await db.start()
        try:
            directory = DirectoryStore(db)
            await directory.upsert_practice(Practice(PRACTICE, "Bench Wellness", "team", ZONE))
            await directory.upsert_staff(
                Staff(PRACTICE, "s1", self.staff, "Dr. Lee", "lee@example.org", "practitioner")
            )
            await directory.upsert_client(
                Client(PRACTICE, "c1", self.client, "Anna Example", "a@example.org", True, True)
            )
        finally:
            await db.stop()

    async def chat(self, size: int) -> str:
        created = await self.call(
            "POST",
            f"{_V3}/createRoom",
            layout.create_room_body(
                name=None,
                is_direct=True,
                initial_state=[],
                power_levels=layout.power_levels([self.staff]),
                invitees=[self.staff, self.client],
            ),
        )
        room = str(created["room_id"])
        for user in (self.staff, self.client):
            await self.call("POST", f"{_V3}/rooms/{quote(room)}/join", {}, user)
        db = create_database(f"sqlite:{self.hs.state['db']}")
        await db.start()
        try:
            from bridge.chats.store import ChatStore

            await ChatStore(db).insert(
                Chat(
                    RoomID(room),
                    PRACTICE,
                    "direct",
                    None,
                    "s1",
                    staff_ids=["s1"],
                    client_ids=["c1"],
                )
            )
        finally:
            await db.stop()
        await self.fill(room, size)
        return room

    def text(self) -> str:
        n = self.rng.choice((3, 6, 12, 25, 60))
        return " ".join(self.rng.choice(_WORDS) for _ in range(n)).capitalize()

    async def fill(self, room: str, size: int) -> None:
        now = int(time.time() * 1000)
        start = now - 2 * 365 * 86_400_000
        step = (now - start - 3_600_000) // max(size, 1)
        sent: list[str] = []
        began = time.monotonic()

        async def one(i: int) -> str:
            user = self.client if i % 2 else self.staff
            content: dict[str, Any] = {"msgtype": "m.text", "body": self.text()}
            if i % 50 == 49:
                name = f"scan-{i}.pdf"
                content = {
                    "msgtype": "m.file",
                    "body": name,
                    "filename": name,
                    "url": f"mxc://{DOMAIN}/media{i}",
                    "info": {"mimetype": "application/pdf", "size": 1000 + i},
                }
            elif i % 100 == 0 and sent:
                content["m.relates_to"] = {"m.in_reply_to": {"event_id": sent[i * 9 // 10]}}
            path = f"{_V3}/rooms/{quote(room)}/send/m.room.message/{uuid.uuid4().hex}"
            resp = await self.call("PUT", path, content, user, start + i * step)
            return str(resp["event_id"])

        for first in range(0, size, CONCURRENCY):
            batch = range(first, min(first + CONCURRENCY, size))
            sent += await asyncio.gather(*(one(i) for i in batch))
            if first % 10_000 < CONCURRENCY and first:
                rate = first / (time.monotonic() - began)
                print(f"  {first:,} of {size:,} messages ({rate:,.0f}/s)", file=sys.stderr)
        later = now - 3_000_000

        async def relate(i: int) -> None:
            target = sent[i]
            user = self.client if i % 2 else self.staff
            path_of = f"{_V3}/rooms/{quote(room)}/send/{{}}/{uuid.uuid4().hex}"
            if i % 1000 == 500:
                await self.call(
                    "PUT",
                    f"{_V3}/rooms/{quote(room)}/redact/{quote(target)}/{uuid.uuid4().hex}",
                    {},
                    user,
                    later,
                )
            elif i % 200 == 100:
                text = self.text()
                await self.call(
                    "PUT",
                    path_of.format("m.room.message"),
                    {
                        "msgtype": "m.text",
                        "body": f"* {text}",
                        "m.new_content": {"msgtype": "m.text", "body": text},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
                    },
                    user,
                    later,
                )
            for who in (self.staff, self.client)[: 1 + i % 2]:
                rel = {"rel_type": "m.annotation", "event_id": target, "key": "👍"}
                await self.call(
                    "PUT", path_of.format("m.reaction"), {"m.relates_to": rel}, who, later
                )

        related = [i for i in range(size) if i % 100 == 37 or i % 200 == 100 or i % 1000 == 500]
        for first in range(0, len(related), CONCURRENCY):
            await asyncio.gather(*(relate(i) for i in related[first : first + CONCURRENCY]))


async def chats(hs: Homeserver, sizes: list[int]) -> dict[int, str]:
    rooms: dict[str, str] = hs.state["rooms"]
    missing = [size for size in sizes if str(size) not in rooms]
    if missing:
        async with aiohttp.ClientSession() as session:
            filler = Filler(hs, session)
            if not rooms:
                await filler.prepare()
            for size in missing:
                print(f"filling a chat of {size:,} messages ...", file=sys.stderr)
                rooms[str(size)] = await filler.chat(size)
                hs.save()
        hs.stop()
        hs.start()  # with fresh planner statistics
    return {size: rooms[str(size)] for size in sizes}


# -- one measurement, in a process of its own ----------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _service(state: dict[str, Any], session: aiohttp.ClientSession) -> Any:
    from mautrix.appservice import AppService, AppServiceAPI
    from mautrix.types import UserID
    from mautrix.util.logging import TraceLogger

    from appservice.homeserver import MemoryASStateStore
    from appservice.rooms import SynapseRooms
    from bridge.audit import AuditLog
    from bridge.chats.store import ChatStore
    from bridge.export import ExportService
    from bridge.export.command import _Sender

    db = create_database(f"sqlite:{state['db']}")
    await db.start()
    bot = UserID(IdentityMapper(state["template"], DOMAIN, state["bot_username"]).bot_mxid)
    api = AppServiceAPI(
        base_url=state["url"],
        bot_mxid=bot,
        token=state["as_token"],
        log=cast(TraceLogger, logging.getLogger("bench.export")),
        state_store=MemoryASStateStore(),
        client_session=session,
    )
    rooms = SynapseRooms(cast(AppService, _Sender(api.bot_intent())))
    service = ExportService(
        DirectoryStore(db),
        ChatStore(db),
        rooms,
        AuditLog(db),
        bot=bot,
        bot_name="Practice bot",
        media_base=state["url"],
    )
    return db, service


async def _child(mode: str, state: dict[str, Any], room: str, out: IO[bytes]) -> dict[str, Any]:
    from bridge.export import Requester
    from bridge.export.cells import cell_text, fit_xlsx
    from bridge.export.rows import TIME_COLUMNS, headings, local_time
    from bridge.export.xlsx import XlsxBook

    before = _peak_mb()
    async with aiohttp.ClientSession() as session:
        db, service = await _service(state, session)
        try:
            began = time.perf_counter()
            fmt = "csv" if mode == "csv" else "xlsx"
            export = await service.prepare(Requester(None, "bench", "cli"), room, fmt)
            if mode != "naive":
                async for chunk in export.chunks():
                    out.write(chunk)
                s = export.stats
                return {
                    "rows": s.rows,
                    "seconds": time.perf_counter() - began,
                    "synapse_wait": s.synapse_wait,
                    "writing": s.writing,
                    "bytes": out.tell(),
                    "peak_mb": _peak_mb(),
                    "before_mb": before,
                }
            rows = []
            async for page in export.rows():
                rows.extend(page)
            fetched = time.perf_counter() - began
            zone = export.zone
            # The export's own writer on these rows, a page at a time as it gets them.
            t = time.perf_counter()
            with XlsxBook(zone, ZONE) as book, tempfile.TemporaryFile() as ours:
                for first in range(0, len(rows), service.page_size):
                    book.add(rows[first : first + service.page_size])
                book.finish(export.metadata(), ours)
            ours_seconds = time.perf_counter() - t
            # Naive: an ordinary workbook holding every cell, then saved.
            from openpyxl import Workbook

            t = time.perf_counter()
            wb = Workbook()
            ws = wb.active
            ws.title = "Messages"
            ws.append(headings(ZONE))
            for row in rows:
                values = row.values()
                for col in TIME_COLUMNS:
                    if values[col] is not None:
                        values[col] = local_time(values[col], zone)
                ws.append([fit_xlsx(cell_text(v)) if isinstance(v, str) else v for v in values])
            meta = wb.create_sheet("Chat")
            for label, value in export.metadata():
                meta.append([label, cell_text(value)])
            wb.save(out)
            naive_seconds = time.perf_counter() - t
            return {
                "rows": len(rows),
                "fetch_seconds": fetched,
                "ours_writer_seconds": ours_seconds,
                "naive_writer_seconds": naive_seconds,
                "naive_total_seconds": fetched + naive_seconds,
                "peak_mb": _peak_mb(),
                "before_mb": before,
            }
        finally:
            await db.stop()


def _run_child(state_path: Path, room: str, mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--state", str(state_path), "--room", room],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench child {mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the table ---------------------------------------------------------------------------------


def _rows(size: int, xlsx: dict[str, Any], csv: dict[str, Any], naive: dict[str, Any]) -> list:
    n = f"{size // 1000}k" if size >= 1000 else str(size)
    rate = xlsx["rows"] / xlsx["seconds"]
    naive_rate = naive["rows"] / naive["naive_total_seconds"]
    writer = naive["rows"] / naive["ours_writer_seconds"]
    naive_writer = naive["rows"] / naive["naive_writer_seconds"]
    writer_ratio = writer / naive_writer
    peak_met = xlsx["peak_mb"] < TARGET_PEAK_MB
    return [
        {
            "name": f"export {n} messages, xlsx: total time",
            "figure": xlsx["seconds"],
            "unit": "s",
            "baseline": naive["naive_total_seconds"],
            "ratio": xlsx["seconds"] / naive["naive_total_seconds"],
            "target": "(naive: same walk, rows in a list, Workbook() in memory)",
        },
        {
            "name": f"export {n}, xlsx: rows per second, end to end",
            "figure": rate,
            "unit": "rows/s",
            "baseline": naive_rate,
            "ratio": rate / naive_rate,
            "target": "",
        },
        {
            "name": f"export {n}, xlsx: share of time waiting on Synapse",
            "figure": 100 * xlsx["synapse_wait"] / xlsx["seconds"],
            "unit": "%",
            "baseline": None,
            "ratio": None,
            "target": f"writing: {100 * xlsx['writing'] / xlsx['seconds']:.0f}% of the time",
        },
        {
            "name": f"export {n}: spreadsheet writing side (same rows)",
            "figure": writer,
            "unit": "rows/s",
            "baseline": naive_writer,
            "ratio": writer_ratio,
            "target": f">= {TARGET_WRITER_RATIO:g}x naive "
            + ("(met)" if writer_ratio >= TARGET_WRITER_RATIO else "(MISSED)"),
        },
        {
            "name": f"export {n}, xlsx: peak memory of the process",
            "figure": xlsx["peak_mb"],
            "unit": "MB",
            "baseline": naive["peak_mb"],
            "ratio": xlsx["peak_mb"] / naive["peak_mb"],
            "target": f"< {TARGET_PEAK_MB} MB "
            + ("(met)" if peak_met else "(MISSED)")
            + f"; {xlsx['before_mb']:.0f} MB before the export",
        },
        {
            "name": f"export {n}, csv: total time",
            "figure": csv["seconds"],
            "unit": "s",
            "baseline": xlsx["seconds"],
            "ratio": csv["seconds"] / xlsx["seconds"],
            "target": f"(against xlsx) peak {csv['peak_mb']:.0f} MB, "
            f"{100 * csv['synapse_wait'] / csv['seconds']:.0f}% waiting on Synapse",
        },
    ]


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    smoke = getattr(args, "smoke", False)
    sizes = [60, 240] if smoke else list(getattr(args, "sizes", [10_000, 100_000]))
    keep = None if smoke else getattr(args, "keep", None)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp_name:
        root = Path(keep) if keep else Path(tmp_name)
        root.mkdir(parents=True, exist_ok=True)
        hs = Homeserver(root)
        hs.start()
        try:
            rooms = await chats(hs, sizes)
            table: list[dict[str, Any]] = []
            peaks = []
            for size in sizes:
                print(f"exporting the chat of {size:,} messages ...", file=sys.stderr)
                xlsx = await asyncio.to_thread(_run_child, hs.state_path, rooms[size], "xlsx")
                csv = await asyncio.to_thread(_run_child, hs.state_path, rooms[size], "csv")
                naive = await asyncio.to_thread(_run_child, hs.state_path, rooms[size], "naive")
                table += _rows(size, xlsx, csv, naive)
                peaks.append((size, xlsx["peak_mb"], naive["peak_mb"]))
        finally:
            hs.stop()
    if len(peaks) >= 2:
        (small, p_small, n_small), (large, p_large, n_large) = peaks[0], peaks[-1]
        growth = p_large / p_small
        table.append(
            {
                "name": f"peak memory, {large:,} against {small:,} messages (xlsx)",
                "figure": growth,
                "unit": "x",
                "baseline": n_large / n_small,
                "ratio": growth / (n_large / n_small),
                "target": "flat (~1x) " + ("(met)" if growth < 1.25 else "(MISSED)"),
            }
        )
    return table


def _child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=("xlsx", "csv", "naive"))
    parser.add_argument("--state")
    parser.add_argument("--room")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    state = json.loads(Path(args.state).read_text())
    with tempfile.TemporaryFile() as out:
        result = asyncio.run(_child(args.child, state, args.room, out))
    print(json.dumps(result))


def main() -> None:
    if "--child" in sys.argv:
        _child_main(sys.argv[1:])
        return
    script_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
