"""What the end to end and scale benchmarks run against: a real Synapse, as the product ships it
(our registration and modules loaded, transactions pushed to the bridge) or plain (the same
homeserver config without the appservice and modules), and small HTTP helpers for both."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from config import Config, generate_config
from registration import generate_registration, module_entries
from registration.homeserver import LocalSynapse, SynapseSpec, free_port

DOMAIN = "bench.test"
V3 = "/_matrix/client/v3"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Homeserver:
    url: str
    synapse: LocalSynapse
    root: Path
    shared_secret: str

    def stop(self) -> None:
        self.synapse.stop()


def product_config(root: Path, **overrides: Any) -> Config:
    """A bridge config on free ports, for a Synapse on a free port too."""
    root.mkdir(parents=True, exist_ok=True)
    hs_port, as_port = free_port(), free_port()
    return generate_config(
        root / "config.yaml",
        **{
            "homeserver.address": f"http://127.0.0.1:{hs_port}",
            "homeserver.domain": DOMAIN,
            "appservice.address": f"http://127.0.0.1:{as_port}",
            "appservice.port": as_port,
            **overrides,
        },
    )


def start_homeserver(
    root: Path,
    config: Config,
    *,
    product: bool,
    appservice: Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Homeserver:
    """Synapse on ``homeserver.address``: with our registration (pushing to the bridge at
    ``appservice.address``) and modules, or, ``product=False``, the same homeserver config
    with neither (and with the registration at ``appservice``, if given, of another
    appservice). ``settings``: top-level keys laid over homeserver.yaml (another database)."""
    url = config.homeserver.address.rstrip("/")
    port = int(url.rsplit(":", 1)[1])
    registration_path = appservice
    if product:
        registration_path = root / "registration.yaml"
        generate_registration(config, registration_path)
    spec = SynapseSpec(
        DOMAIN,
        port,
        registration_path,
        module_entries(config) if product else None,
        fast=True,
    )
    synapse = LocalSynapse.create(
        root / "synapse", spec, log_path=root / "synapse.log", settings=settings
    )
    synapse.start()
    return Homeserver(url, synapse, root, synapse.registration_shared_secret)


def _bridge_process(config: Config, log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "-c", str(config.path), "run"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def start_bridge(config: Config, log_path: Path) -> subprocess.Popen[bytes]:
    """``practice-bridge run`` with this config, in a process of its own, as deployed; returns
    once it says it runs."""
    proc = _bridge_process(config, log_path)
    deadline = time.monotonic() + 120
    while "practice-bridge is running" not in _log(log_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the bridge did not start:\n{_log(log_path)[-3000:]}")
        await asyncio.sleep(0.1)
    return proc


def _log(path: Path) -> str:
    return path.read_text(errors="replace")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@asynccontextmanager
async def running_product(
    root: Path, config: Config
) -> AsyncIterator[tuple[Homeserver, subprocess.Popen[bytes]]]:
    """The product's Synapse and the bridge process, as deployed, for the length of the block:
    (homeserver, bridge process); both are stopped after it."""
    hs = start_homeserver(root, config, product=True)
    try:
        bridge = await start_bridge(config, root / "bridge.log")
        try:
            yield hs, bridge
        finally:
            stop_process(bridge)
    finally:
        hs.stop()


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str,
    params: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201),
) -> Any:
    """One JSON request; anything but an expected status is an error of the bench."""
    async with session.request(
        method, url, json=body, params=params, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        data = await resp.json(content_type=None)
        if resp.status not in ok:
            raise RuntimeError(f"{method} {url.split('?')[0]}: {resp.status} {data}")
        return data


async def register_plain_user(
    session: aiohttp.ClientSession, hs: Homeserver, localpart: str, password: str
) -> str:
    """A plain user through the shared-secret admin registration; returns an access token
    from an ordinary password login (a device, as a minted session has)."""
    base = f"{hs.url}/_synapse/admin/v1/register"
    async with session.get(base) as resp:
        nonce = (await resp.json())["nonce"]
    mac = hmac.new(hs.shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(f"{nonce}\x00{localpart}\x00{password}\x00notadmin".encode())
    body = {"nonce": nonce, "username": localpart, "password": password, "mac": mac.hexdigest()}
    async with session.post(base, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"registering {localpart}: {resp.status} {await resp.text()}")
    async with session.post(
        f"{hs.url}{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        },
    ) as resp:
        return str((await resp.json())["access_token"])


class ProductApi:
    """The product as a portal's backend reaches it: the provisioning API with the shared
    secret, and Synapse with the appservice's token."""

    def __init__(self, config: Config, hs: Homeserver, session: aiohttp.ClientSession) -> None:
        self.hs = hs
        self.session = session
        self.api = f"http://127.0.0.1:{config.appservice.port}{config.provisioning.prefix}"
        self.secret = config.provisioning.shared_secret
        self.as_token = config.appservice.as_token
        self.mapper = config.identity_mapper()

    async def put(self, path: str, body: Any) -> Any:
        """``PUT`` on the provisioning API as the portal backend."""
        return await call(self.session, "PUT", self.api + path, body, token=self.secret)
