"""The Synapse module's cost: a client message sent through Synapse with the module and without.

What is measured: the time of one ``PUT /rooms/{roomId}/send/m.room.message/{txnId}`` by a
client session (minted with the appservice login, as the bridge mints them) into a practice
chat that carries the bot's policy state with a client message limit, so the module reads the
policy and measures every message. The clock runs from the request to Synapse's answer.

Against what: the same request to a second Synapse with the same homeserver config,
registration shape and room, but no ``modules:``. Both run side by side on this machine; the
sends alternate between them (and which goes first alternates too), so drift and noise fall on
both alike. The figure is the median (and the 99th percentile) with the module; the ratio is
against the same statistic without it, from this one run. Target: at most 5% more at the median.

No bridge runs: the registrations have no URL, so neither Synapse pushes transactions anywhere
and only the send path is timed.

    python bench/module.py [--messages N] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench._product import DOMAIN, V3, call  # noqa: E402
from bench.table import latency_rows, script_main, size  # noqa: E402
from bridge.chats import layout  # noqa: E402
from bridge.identity import IdentityMapper  # noqa: E402
from config import generate_config  # noqa: E402
from registration import generate_registration, module_entry  # noqa: E402
from registration.homeserver import LocalSynapse, SynapseSpec, free_port  # noqa: E402

PRACTICE = "bench"
LIMIT = 1000
BODY_LENGTH = 200
TARGET_RATIO = 1.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=1000, help="timed sends per Synapse")
    parser.add_argument("--warmup", type=int, default=100, help="untimed sends per Synapse")


@dataclass
class Side:
    """One Synapse with one practice chat and a client session in it."""

    name: str
    url: str
    synapse: LocalSynapse
    room: str = ""
    token: str = ""


async def _call(
    session: aiohttp.ClientSession,
    side: Side,
    method: str,
    path: str,
    body: Any,
    token: str,
    user_id: str | None = None,
) -> dict[str, Any]:
    """A client-server API call on one side's Synapse (as ``user_id``, for the appservice)."""
    params = {"user_id": user_id} if user_id else None
    data: dict[str, Any] = await call(
        session, method, side.url + path, body, token=token, params=params, ok=(200,)
    )
    return data


def _start(root: Path, with_module: bool) -> tuple[Side, str, IdentityMapper]:
    """Write the configs the way the tests do (no URL in the registration) and start Synapse."""
    hs_port = free_port()
    config = generate_config(
        root / "config.yaml",
        **{
            "homeserver.address": f"http://127.0.0.1:{hs_port}",
            "homeserver.domain": DOMAIN,
            "appservice.address": "http://127.0.0.1:9",
            "appservice.port": free_port(),
        },
    )
    registration_path = root / "registration.yaml"
    generate_registration(config, registration_path)
    yaml = YAML()
    registration = yaml.load(registration_path)
    registration["url"] = None  # Nothing receives transactions: only the send path is timed.
    yaml.dump(registration, registration_path)
    modules = [module_entry(config)] if with_module else None
    spec = SynapseSpec(DOMAIN, hs_port, registration_path, modules, fast=True)
    synapse = LocalSynapse.create(root / "synapse", spec, log_path=root / "synapse.log")
    synapse.start()
    mapper = config.identity_mapper()
    name = "module" if with_module else "no module"
    return Side(name, synapse.url, synapse), config.appservice.as_token, mapper


async def _prepare(
    session: aiohttp.ClientSession, side: Side, as_token: str, mapper: IdentityMapper
) -> None:
    """The bot, a practitioner and a client; the bot's chat with its policy; a client session."""
    staff = mapper.user_id("staff", PRACTICE, "s1")
    client = mapper.user_id("client", PRACTICE, "c1")
    for user in (staff, client):  # the bot, the appservice's sender, is there already
        await _call(
            session,
            side,
            "POST",
            f"{V3}/register",
            {"type": "m.login.application_service", "username": user[1:].split(":")[0]},
            as_token,
        )
    policy = {
        "client_user_ids": [client],
        "client_message_limit": LIMIT,
        "kind": "direct",
        "clients_may_send": True,
    }
    created = await _call(
        session,
        side,
        "POST",
        f"{V3}/createRoom",
        layout.create_room_body(
            name=None,
            is_direct=True,
            initial_state=layout.initial_state({"practice_id": PRACTICE}, policy),
            power_levels=layout.power_levels([staff]),
            invitees=[staff, client],
        ),
        as_token,
    )
    side.room = str(created["room_id"])
    for user in (staff, client):
        await _call(
            session, side, "POST", f"{V3}/rooms/{quote(side.room)}/join", {}, as_token, user
        )
    login = await _call(
        session,
        side,
        "POST",
        f"{V3}/login",
        {
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": client},
        },
        as_token,
    )
    side.token = str(login["access_token"])
    # The module is really in the path: an over-limit message is refused with it, not without.
    path = f"{side.url}{V3}/rooms/{quote(side.room)}/send/m.room.message/{uuid.uuid4().hex}"
    async with session.put(
        path,
        json={"msgtype": "m.text", "body": "x" * (LIMIT + 1)},
        headers={"Authorization": f"Bearer {side.token}"},
    ) as resp:
        refused = resp.status == 400
    if refused != (side.name == "module"):
        raise RuntimeError(f"{side.name}: an over-limit message was refused={refused}")


async def _send(session: aiohttp.ClientSession, side: Side, body: str) -> float:
    path = f"{side.url}{V3}/rooms/{quote(side.room)}/send/m.room.message/{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {side.token}"}
    content = {"msgtype": "m.text", "body": body}
    start = time.perf_counter()
    async with session.put(path, json=content, headers=headers) as resp:
        await resp.read()
        status = resp.status
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"send on {side.name}: HTTP {status}")
    return elapsed


async def measure(messages: int, warmup: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-module-") as tmp_name:
        tmp = Path(tmp_name)
        sides: list[tuple[Side, str, IdentityMapper]] = []
        try:
            for loads_module in (True, False):
                root = tmp / ("module" if loads_module else "bare")
                root.mkdir()
                sides.append(_start(root, loads_module))
            loaded, bare = sides[0][0], sides[1][0]
            timings: dict[str, list[float]] = {loaded.name: [], bare.name: []}
            async with aiohttp.ClientSession() as session:
                for side, as_token, mapper in sides:
                    await _prepare(session, side, as_token, mapper)
                text = ("a practice question " * BODY_LENGTH)[:BODY_LENGTH]
                for i in range(warmup + messages):
                    order = (loaded, bare) if i % 2 == 0 else (bare, loaded)
                    for side in order:
                        elapsed = await _send(session, side, text)
                        if i >= warmup:
                            timings[side.name].append(elapsed)
        finally:
            for side, _, _ in sides:
                side.synapse.stop()
    what = f"client message send through Synapse, {BODY_LENGTH} chars, {messages} sends"
    return latency_rows(
        what,
        timings[loaded.name],
        timings[bare.name],
        side=" with the module",
        against="no module",
        target=TARGET_RATIO,
    )


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    return await measure(size(args, "messages", 1000, 20), size(args, "warmup", 100, 5))


def main() -> None:
    script_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
