"""Installing the Synapse modules as an administrator does: Synapse started before the bridge
exists, and (in test_synapse_modules_package) the modules' package alone in Synapse's own
environment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bridge.app import Bridge
from bridge.db import create_database
from practice_bridge_synapse.bot import FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS
from tests.clients import HomeserverInfo, eventually
from tests.conftest import bridge_config, synapse_process

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
