"""`practice-bridge check` and the start-up compare the running Synapse with the config: one
line per difference and a non-zero exit, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appservice.synapse_check import SynapseMismatch
from bridge.app import Bridge
from bridge.db import create_database
from config import load_config
from tests.clients import HomeserverInfo, cli
from tests.conftest import bridge_config, synapse_process
from tests.test_config import set_key


def _config(homeserver: HomeserverInfo, tmp_path: Path, **changes: object) -> Path:
    """The session Synapse's bridge config, in ``tmp_path``, with ``changes`` (dotted keys)."""
    path = Path(bridge_config(homeserver, tmp_path).path)
    for key, value in changes.items():
        set_key(key, value)(path)
    return path


def _check(config: Path) -> tuple[int, list[str]]:
    result = cli("-c", str(config), "check", cwd=config.parent)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def test_a_synapse_as_the_config_describes_passes(
    homeserver: HomeserverInfo, tmp_path: Path
) -> None:
    code, lines = _check(_config(homeserver, tmp_path))
    assert code == 0, lines
    assert lines == [
        f"Synapse at {homeserver.config.homeserver.address} is as the config describes"
    ]


def test_a_wrong_domain_is_one_line(homeserver: HomeserverInfo, tmp_path: Path) -> None:
    code, lines = _check(_config(homeserver, tmp_path, **{"homeserver.domain": "wrong.test"}))
    assert code == 1
    assert lines == [
        f"error: Synapse's server name is {homeserver.domain}, but homeserver.domain is wrong.test"
    ]


def test_a_wrong_bot_user_is_one_line(homeserver: HomeserverInfo, tmp_path: Path) -> None:
    code, lines = _check(_config(homeserver, tmp_path, **{"appservice.bot_username": "otherbot"}))
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("error: Synapse knows the appservice's bot as @practicebot:")
    assert "appservice.bot_username is otherbot" in lines[0]


def test_an_unknown_token_is_one_line(homeserver: HomeserverInfo, tmp_path: Path) -> None:
    code, lines = _check(_config(homeserver, tmp_path, **{"appservice.as_token": "not-known"}))
    assert code == 1
    assert len(lines) == 1 and "does not know the bridge's appservice token" in lines[0]


def test_no_synapse_is_one_line(homeserver: HomeserverInfo, tmp_path: Path) -> None:
    code, lines = _check(
        _config(homeserver, tmp_path, **{"homeserver.address": "http://127.0.0.1:9"})
    )
    assert code == 1
    assert len(lines) == 1 and "Synapse does not answer at homeserver.address" in lines[0]


@pytest.fixture(scope="module")
def bare_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeserverInfo]:
    """Synapse with the registration but without the modules; the config expects them."""
    with synapse_process(
        tmp_path_factory.mktemp("no-modules"),
        with_modules=False,
        extra={"homeserver.modules": True},
    ) as hs:
        yield hs


def test_missing_modules_are_a_line_each(bare_synapse: HomeserverInfo, tmp_path: Path) -> None:
    code, lines = _check(_config(bare_synapse, tmp_path))
    assert code == 1
    assert len(lines) == 2, lines
    assert "the rules module is not loaded" in lines[0]
    assert "the media module is not loaded" in lines[1]
    # A homeserver that cannot load modules says so in the config.
    code, lines = _check(_config(bare_synapse, tmp_path, **{"homeserver.modules": False}))
    assert code == 0, lines


async def test_start_up_refuses_with_a_line_each_and_no_traceback(
    homeserver: HomeserverInfo, tmp_path: Path
) -> None:
    path = _config(homeserver, tmp_path, **{"homeserver.domain": "wrong.test"})
    bridge = Bridge(load_config(path), db=create_database(f"sqlite:{tmp_path / 'b.db'}"))
    with pytest.raises(SynapseMismatch) as refused:
        await bridge.start()
    await bridge.stop()
    assert [p.text for p in refused.value.problems] == [
        f"Synapse's server name is {homeserver.domain}, but homeserver.domain is wrong.test"
    ]
    # The command: the same line, a non-zero exit, no traceback.
    result = cli("-c", str(path), "run", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    assert "homeserver.domain is wrong.test" in output
    assert "practice-bridge is running" not in output


@pytest.fixture(scope="module")
def open_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeserverInfo]:
    """Synapse with the modules but without the recommended privacy settings (URL previews
    stay off: they need packages this environment does not have)."""
    settings: dict[str, Any] = {
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "presence": {"enabled": True},
    }
    with synapse_process(
        tmp_path_factory.mktemp("open"), with_modules=True, settings=settings, federation=True
    ) as hs:
        yield hs


def test_recommended_settings_that_are_off_are_a_warning_each(
    open_synapse: HomeserverInfo, tmp_path: Path
) -> None:
    code, lines = _check(_config(open_synapse, tmp_path))
    assert code == 2, lines
    assert len(lines) == 3, lines
    assert all(line.startswith("warning: ") for line in lines)
    for setting in (
        "enable_registration: false",
        "presence: {enabled: false}",
        "federation_domain_whitelist: []",
    ):
        assert [line for line in lines if setting in line], setting
