"""Who a profile answers: nobody without a token, nobody of another practice, and in the practice
only people who share a chat (the Synapse settings of bridge.privacy, as make run, the tests and
the production snippet write them); and the bridge's start-up check, against a Synapse without
them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.util.async_db import Database

from appservice.privacy import profile_leaks
from appservice.synapse_check import check_synapse
from bridge.app import Bridge
from bridge.privacy import REQUIRE_AUTH, SHARED_ROOMS, SYNAPSE_SETTINGS
from registration.homeserver import read_homeserver_config, write_homeserver_config
from tests.clients import ApiClient, HomeserverInfo, MatrixClient, Reply
from tests.conftest import bridge_config, synapse_process

# make run WORKERS=1 writes the same homeserver.yaml for every process: profiles stay private
# whichever worker answers.
pytestmark = pytest.mark.synapse_workers


async def _anonymous(homeserver: HomeserverInfo, path: str) -> Reply:
    async with aiohttp.ClientSession() as session:
        async with session.get(homeserver.url + path) as resp:
            return Reply(resp.status, await resp.json(content_type=None))


def _profile(user_id: str, field: str = "") -> str:
    return f"/_matrix/client/v3/profile/{quote(user_id)}" + (f"/{field}" if field else "")


async def _search(who: MatrixClient, term: str) -> list[dict[str, Any]]:
    r = await who.request(
        "POST", "/_matrix/client/v3/user_directory/search", {"search_term": term, "limit": 50}
    )
    assert r.status == 200, r.body
    return list(r.body["results"])


async def test_a_profile_answers_only_who_shares_a_chat(
    api: ApiClient, homeserver: HomeserverInfo, practice_id: str
) -> None:
    other = practice_id + "x"
    await api.setup_practice(practice_id, clients=("c1",), staff=(("s1", "practitioner"),))
    await api.setup_practice(other, clients=("x1",), staff=(("xs", "owner"),))
    client = await api.session_for(practice_id, client_id="c1")
    staff = await api.session_for(practice_id, staff_id="s1")
    foreign_staff = await api.session_for(other, staff_id="xs")
    foreign_client = await api.session_for(other, client_id="x1")

    # Without a token: nothing, whatever field is asked for.
    for field in ("", "displayname", "avatar_url"):
        r = await _anonymous(homeserver, _profile(client.user_id, field))
        assert (r.status, r.errcode) == (401, "M_MISSING_TOKEN"), r
        assert "Client c1" not in str(r.body)

    # Signed in elsewhere (another practice), or in the practice but without a chat: nothing.
    for outsider in (foreign_staff, foreign_client, staff):
        for field in ("", "displayname"):
            r = await outsider.request("GET", _profile(client.user_id, field))
            assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r
            assert "Client c1" not in str(r.body)

    # The user directory finds no portal user for anyone.
    for searcher in (foreign_staff, foreign_client, staff):
        for term in ("Client c1", "c1", client.user_id):
            assert await _search(searcher, term) == []

    r = await api.call("POST", "/chats/direct", {"client_id": "c1"}, token=staff.token)
    assert r.status == 201, r.body
    # Sharing a chat: each sees the other's name.
    r = await staff.request("GET", _profile(client.user_id))
    assert (r.status, r.body.get("displayname")) == (200, "Client c1"), r
    r = await client.request("GET", _profile(staff.user_id, "displayname"))
    assert (r.status, r.body.get("displayname")) == (200, "Staff s1"), r
    # ...and still nobody else does.
    for outsider in (foreign_staff, foreign_client):
        r = await outsider.request("GET", _profile(client.user_id))
        assert (r.status, r.errcode) == (403, "M_FORBIDDEN"), r
    r = await _anonymous(homeserver, _profile(staff.user_id))
    assert r.status == 401, r


def test_every_generated_homeserver_yaml_carries_the_settings(tmp_path: Path) -> None:
    """make run, the tests and the benches write homeserver.yaml here; leaving the settings out
    is only for the test of the bridge's start-up check."""
    kept = read_homeserver_config(
        write_homeserver_config(
            tmp_path / "a", server_name="x.test", port=1, registration_path=None, module=None
        )
    )
    assert {key: kept[key] for key in SYNAPSE_SETTINGS} == SYNAPSE_SETTINGS
    left_out = read_homeserver_config(
        write_homeserver_config(
            tmp_path / "b",
            server_name="x.test",
            port=1,
            registration_path=None,
            module=None,
            private=False,
        )
    )
    assert not set(SYNAPSE_SETTINGS) & set(left_out)


# -- the bridge's start-up check -------------------------------------------------------------

# A Synapse as it comes (no privacy settings), and one with the first setting but not the second.
LEAKY = {"as it comes": None, "without the shared-room limit": {REQUIRE_AUTH: True}}


@pytest.fixture(scope="module", params=list(LEAKY))
def leaky_homeserver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HomeserverInfo]:
    with synapse_process(
        tmp_path_factory.mktemp("leaky"),
        with_modules=True,
        private=False,
        settings=LEAKY[request.param],
    ) as hs:
        yield hs


async def _leaks(hs: HomeserverInfo) -> list[str]:
    cfg = hs.config
    async with aiohttp.ClientSession() as session:
        return await profile_leaks(session, hs.url, cfg.bot_mxid, cfg.appservice.as_token)


async def test_the_check_finds_nothing_to_say_about_a_private_synapse(
    homeserver: HomeserverInfo,
) -> None:
    assert await _leaks(homeserver) == []
    assert not any(f.leak for f in await check_synapse(homeserver.config))


async def test_the_bridge_names_the_missing_setting_at_start(
    leaky_homeserver: HomeserverInfo,
    database: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    as_it_comes = LEAKY[request.node.callspec.params["leaky_homeserver"]] is None
    bridge = Bridge(bridge_config(leaky_homeserver, tmp_path), db=database)
    with caplog.at_level(logging.INFO, logger="practice.app"):
        await bridge.start()
        await bridge.stop()
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name == "practice.app" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 1, errors
    assert SHARED_ROOMS in errors[0] and "homeserver.yaml" in errors[0]
    assert (REQUIRE_AUTH in errors[0]) == as_it_comes
    # practice-bridge check says the same, as an error (exit 1), among its other findings.
    findings = await check_synapse(leaky_homeserver.config)
    leaks = [str(f) for f in findings if f.leak]
    assert leaks == [f"error: {leak}" for leak in await _leaks(leaky_homeserver)]
    assert len(leaks) == 1
    assert (REQUIRE_AUTH in leaks[0]) == as_it_comes and SHARED_ROOMS in leaks[0]
    assert not any(f.problem for f in findings)
