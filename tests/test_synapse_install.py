"""Installing the Synapse modules as an administrator does: Synapse started before the bridge
exists, and (in test_synapse_modules_package) the modules' package alone in Synapse's own
environment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bridge.app import Bridge
from bridge.db import create_database
from bridge.errors import Codes
from config import load_config
from practice_bridge_synapse.bot import FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS
from registration.homeserver import LocalSynapse, SynapseSpec, free_port
from tests.clients import (
    LIMIT,
    ApiClient,
    HomeserverInfo,
    MatrixClient,
    chat_with_limit,
    cli,
    eventually,
)
from tests.conftest import bridge_config, synapse_process
from tests.media import upload, windows_program
from tests.synapse_env import distributions, pip

# The back-off's ceiling for this test: a minute scaled down to a second, so that the test sees
# the schedule settle at its ceiling within seconds. What it shows holds for any ceiling: the
# delays double up to it, and the log does not grow with the number of checks.
CEILING = 1.0
CHECKS = 10
_CHECK = re.compile(r"check (\d+): .* is not registered yet; next check in ([0-9.]+) s")


def _log_config(path: Path) -> Path:
    """Synapse's log at INFO on stderr (the process log), with the module's debug lines: one
    per check, so that the test counts checks separately from what an administrator sees."""
    YAML().dump(
        {
            "version": 1,
            "formatters": {
                "plain": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                }
            },
            "loggers": {"practice.synapse_module": {"level": "DEBUG"}},
            "root": {"level": "INFO", "handlers": ["stderr"]},
            "disable_existing_loggers": False,
        },
        path,
    )
    return path


def _lines(hs: HomeserverInfo) -> list[str]:
    return hs.log_path.read_text(errors="replace").splitlines()


def _about_the_bot(lines: list[str], bot: str) -> list[str]:
    """What an administrator reads about the bot: lines above debug that name it."""
    return [line for line in lines if bot in line and " - DEBUG - " not in line]


def _module_lines(lines: list[str]) -> list[str]:
    """What the rules module logs above debug."""
    return [
        line
        for line in lines
        if " - practice.synapse_module - " in line and " - DEBUG - " not in line
    ]


async def test_synapse_before_the_bridge_waits_quietly_then_promotes_the_bot(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = tmp_path_factory.mktemp("synapse-first")
    with synapse_process(
        root,
        with_modules=True,
        module_settings={"retry_max_seconds": CEILING},
        settings={"log_config": str(_log_config(root / "log.yaml"))},
    ) as hs:
        bot = hs.config.bot_mxid

        async def checked() -> list[tuple[int, float]]:
            found = [_CHECK.search(line) for line in _lines(hs)]
            checks = [(int(m[1]), float(m[2])) for m in found if m]
            return checks if len(checks) >= CHECKS else []

        checks = await eventually(checked, timeout=120)
        # Exponential back-off from a quarter second, doubling up to the ceiling.
        expected = [min(FIRST_RETRY_SECONDS * 2**i, CEILING) for i in range(len(checks))]
        assert [delay for _, delay in checks] == expected
        assert [n for n, _ in checks] == list(range(1, len(checks) + 1))
        # However many checks, one line says what the module waits for; no failed logins.
        lines = _lines(hs)
        loaded, waiting = _module_lines(lines)
        assert "module loaded for bot" in loaded
        assert "waiting for the bridge to register its bot" in waiting
        # Synapse's own line about the registration, the module's two: a handful in all.
        assert len(_about_the_bot(lines, bot)) <= 3, _about_the_bot(lines, bot)
        assert not [line for line in lines if "Attempted to login" in line]
        # With the default ceiling that schedule makes at most this many checks in the first
        # minute, and one a minute after: the module's whole output is the one line above.
        delays, elapsed = [], 0.0
        while elapsed <= 60:
            delays.append(min(FIRST_RETRY_SECONDS * 2 ** len(delays), MAX_RETRY_SECONDS))
            elapsed += delays[-1]
        assert len(delays) <= 9

        # The bridge starts: it registers the bot, and the module makes it a server admin.
        bridge = Bridge(
            bridge_config(hs, tmp_path), db=create_database(f"sqlite:{tmp_path / 'b.db'}")
        )
        await bridge.start()
        try:
            assert await bridge.homeserver.bot_is_admin()
        finally:
            await bridge.stop()
        *_, promoted = _module_lines(_lines(hs))
        assert f"made {bot} a server admin" in promoted
        assert len(_module_lines(_lines(hs))) == 3


# -- the modules' package alone in Synapse's environment ---------------------------------------
# Expensive (10 s to a minute and more under load, pip installing matrix-synapse from its cache
# into a fresh environment): one environment for the test session (tests/synapse_env.py).

ROOT = Path(__file__).resolve().parents[1]
DUMMY_MODULE = '''
from synapse.module_api import DirectServeJsonResource


class Hello(DirectServeJsonResource):
    async def _async_render_GET(self, request):
        return 200, {"hello": self.greeting}


class Other:
    """Another module of the homeserver, which the bridge's lines must leave in place."""

    def __init__(self, config, api):
        resource = Hello()
        resource.greeting = config["greeting"]
        api.register_web_resource("/_synapse/client/other.module/hello", resource)

    @staticmethod
    def parse_config(config):
        return config
'''


@dataclass
class Merged:
    """Synapse from the environment with the modules' package alone, on a homeserver.yaml that
    already listed another appservice and another module, with the bridge's lines merged in."""

    homeserver: HomeserverInfo
    other_token: str


@pytest.fixture
def merged_synapse(synapse_only: tuple[Path, set[str]], tmp_path: Path) -> Iterator[Merged]:
    python, synapse_alone = synapse_only
    # What an administrator copies to Synapse's host: the synapse-modules folder.
    source = shutil.copytree(
        ROOT / "synapse-modules",
        tmp_path / "synapse-modules",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    pip(python, "install", "--quiet", "--no-compile", str(source))
    installed = distributions(python)
    assert installed - synapse_alone == {"practice-bridge-synapse"}
    assert not {"practice-bridge", "aiohttp", "mautrix", "asyncpg", "ruamel-yaml"} & installed
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", purelib], text=True).strip())
    ours = {p.name for p in site.iterdir() if p.name.startswith("practice")}
    assert {name for name in ours if not name.endswith(".dist-info")} == {
        "practice_bridge_synapse"
    }
    # Another module, installed into Synapse's environment as its administrator would.
    (site / "other_module.py").write_text(DUMMY_MODULE)

    # The bridge's config and registration, as the admin guide writes them.
    hs_port, as_port = free_port(), free_port()
    domain = "practice.test"
    settings = [
        f"homeserver.address=http://127.0.0.1:{hs_port}",
        f"homeserver.domain={domain}",
        f"appservice.address=http://127.0.0.1:{as_port}",
        f"appservice.port={as_port}",
    ]
    sets = [f"--set={s}" for s in settings]
    result = cli("-c", "config.yaml", "generate-config", *sets, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = cli("-c", "config.yaml", "generate-registration", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    # An existing homeserver.yaml that already lists another appservice and another module.
    other = tmp_path / "other-appservice.yaml"
    other_token = "other-as-token-" + uuid.uuid4().hex
    YAML().dump(
        {
            "id": "other",
            "url": None,
            "as_token": other_token,
            "hs_token": "other-hs-token-" + uuid.uuid4().hex,
            "sender_localpart": "otherbot",
            "namespaces": {"users": [{"exclusive": True, "regex": "@other_.*"}]},
        },
        other,
    )
    existing = SynapseSpec(domain, hs_port, other, None, fast=True).write(
        tmp_path / "synapse",
        {"modules": [{"module": "other_module.Other", "config": {"greeting": "still here"}}]},
    )
    result = cli("-c", "config.yaml", "snippet", "--merge", str(existing), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    existing.write_text(result.stdout)

    config = load_config(tmp_path / "config.yaml")
    log_path = tmp_path / "synapse.log"
    with LocalSynapse(existing, log_path, python=python) as synapse:
        hs = HomeserverInfo(synapse.url, domain, tmp_path, config, log_path)
        yield Merged(hs, other_token)


# The first use of the Synapse-only environment builds it: minutes on a loaded machine.
@pytest.mark.timeout(900)
async def test_the_modules_package_alone_in_synapses_environment(
    merged_synapse: Merged, tmp_path: Path
) -> None:
    """pip shows nothing of the bridge in Synapse's environment (the fixture checks it); the
    rules and the attachment policy are enforced, the other module and appservice kept."""
    hs = merged_synapse.homeserver
    config = hs.config
    bridge = Bridge(config, db=create_database(f"sqlite:{tmp_path / 'bridge.db'}"))
    await bridge.start()
    api = ApiClient(config, hs)
    try:
        assert bridge.module_active
        assert await bridge.homeserver.bot_is_admin()
        # The rules: a client's message over the practice's limit is refused before storage.
        practice = f"p{uuid.uuid4().hex[:8]}"
        _, client, room = await chat_with_limit(api, practice)
        refused = await client.send(room, {"msgtype": "m.text", "body": "x" * (LIMIT + 1)})
        assert (refused.status, refused.errcode) == (400, Codes.MESSAGE_TOO_LONG)
        # The attachment policy: a program is refused on upload.
        refused = await upload(client, windows_program(), "application/octet-stream", "a.pdf")
        assert refused.errcode == Codes.ATTACHMENT_TYPE_BLOCKED
        # The other module and the other appservice are still there.
        hello = await client.request("GET", "/_synapse/client/other.module/hello")
        assert hello.body == {"hello": "still here"}
        whoami = await MatrixClient(hs.url, merged_synapse.other_token, "", api.session).request(
            "GET", "/_matrix/client/v3/account/whoami"
        )
        assert whoami.body["user_id"] == f"@otherbot:{hs.domain}"
    finally:
        await api.close()
        await bridge.stop()
