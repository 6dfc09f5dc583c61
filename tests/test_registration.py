"""`generate-registration`: the registration Synapse loads and the homeserver.yaml snippet.

The registration is read back with Synapse's own loader, so namespace matching is Synapse's
(``re.match``, anchored only at the start), not ours.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from synapse.appservice import ApplicationService
from synapse.config.appservice import load_appservices

from bridge.identity import KINDS, Kind
from bridge.privacy import SYNAPSE_SETTINGS as PRIVACY_SETTINGS
from config import PLACEHOLDER_TOKEN, load_config
from practice_bridge_synapse.logins import PracticeLogins
from practice_bridge_synapse.media import PracticeMedia
from practice_bridge_synapse.rules import PracticeRules
from registration.homeserver import (
    LOGIN_RATE_LIMITS,
    read_homeserver_config,
    write_homeserver_config,
)
from tests.clients import cli

DOMAIN = "practice.test"
ADDRESS = "http://10.1.2.3:29341"
REQUIRED = [
    "--set=homeserver.address=http://127.0.0.1:8008",
    "--set=homeserver.domain=practice.test",
    "--set=appservice.address=http://127.0.0.1:29340",
]


class Generated:
    def __init__(self, root: Path, result: subprocess.CompletedProcess[str]) -> None:
        self.root = root
        self.result = result
        self.config_path = root / "config.yaml"
        self.registration_path = root / "registration.yaml"
        with open(self.registration_path) as f:
            self.registration: dict[str, Any] = YAML(typ="safe").load(f)
        self.config = load_config(self.config_path, save=False)
        self.mapper = self.config.identity_mapper()
        self.service: ApplicationService = load_appservices(DOMAIN, [str(self.registration_path)])[
            0
        ]

    @property
    def snippet(self) -> dict[str, Any]:
        """What stdout holds: the snippet alone, as YAML."""
        snippet: dict[str, Any] = YAML(typ="safe").load(self.result.stdout)
        return snippet


def generate(root: Path) -> Generated:
    settings = {
        "homeserver.address": "http://10.1.2.3:8008",
        "homeserver.domain": DOMAIN,
        "appservice.address": ADDRESS,
    }
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    assert cli("-c", "config.yaml", "generate-config", *sets, cwd=root).returncode == 0
    result = cli("-c", "config.yaml", "generate-registration", cwd=root)
    assert result.returncode == 0, result.stderr
    return Generated(root, result)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return generate(tmp_path_factory.mktemp("registration"))


def test_registration_describes_the_bridge(generated: Generated) -> None:
    reg = generated.registration
    assert reg["id"] == generated.config.appservice.id
    assert reg["url"] == ADDRESS
    assert reg["sender_localpart"] == generated.config.appservice.bot_username
    assert reg["rate_limited"] is False
    assert reg["receive_ephemeral"] is True
    service = generated.service
    assert service.url == ADDRESS
    assert service.is_rate_limited() is False
    assert service.supports_ephemeral is True
    assert service.sender.to_string() == generated.config.bot_mxid
    assert all(ns["exclusive"] for ns in reg["namespaces"]["users"])
    # It holds the tokens: only its owner may read it.
    assert stat.S_IMODE(os.stat(generated.registration_path).st_mode) == 0o600


def test_tokens_are_written_back_into_the_config(generated: Generated) -> None:
    reg, config = generated.registration, generated.config
    assert config.appservice.as_token == reg["as_token"]
    assert config.appservice.hs_token == reg["hs_token"]
    assert PLACEHOLDER_TOKEN not in (reg["as_token"], reg["hs_token"])
    assert reg["as_token"] != reg["hs_token"]
    assert len(reg["as_token"]) >= 32 and len(reg["hs_token"]) >= 32
    # The config file itself kept its comments.
    assert "# Tokens shared with Synapse." in generated.config_path.read_text()


def test_running_it_again_takes_force_and_makes_new_tokens_in_both_files(
    tmp_path: Path,
) -> None:
    first = generate(tmp_path)
    before = (tmp_path / "registration.yaml").read_bytes(), (tmp_path / "config.yaml").read_bytes()
    refused = cli("-c", "config.yaml", "generate-registration", cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "practice-bridge snippet" in refused.stderr and "--force" in refused.stderr
    after = (tmp_path / "registration.yaml").read_bytes(), (tmp_path / "config.yaml").read_bytes()
    assert after == before
    again = cli("-c", "config.yaml", "generate-registration", "--force", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = Generated(tmp_path, again)
    assert second.registration["as_token"] != first.registration["as_token"]
    assert second.config.appservice.as_token == second.registration["as_token"]
    assert second.config.appservice.hs_token == second.registration["hs_token"]


def test_snippet_alone_on_stdout_is_valid_yaml(generated: Generated) -> None:
    """`generate-registration > snippet.yaml` saves the snippet and nothing else; what
    happened goes to stderr."""
    assert "Wrote registration.yaml" in generated.result.stderr
    assert "Wrote" not in generated.result.stdout
    path = generated.root / "snippet.yaml"
    path.write_text(generated.result.stdout)
    with open(path) as f:
        saved = YAML(typ="safe").load(f)
    assert set(saved) >= {"app_service_config_files", "modules"}
    # Its comment says to merge into the lists homeserver.yaml may already have.
    assert "merge these lines into homeserver.yaml" in generated.result.stdout
    assert "existing app_service_config_files list" in generated.result.stdout


def test_snippet_prints_it_again_and_leaves_the_tokens_alone(tmp_path: Path) -> None:
    first = generate(tmp_path)
    files = ("registration.yaml", "config.yaml")
    before = [(tmp_path / name).read_bytes() for name in files]
    again = cli("-c", "config.yaml", "snippet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.result.stdout
    assert [(tmp_path / name).read_bytes() for name in files] == before
    # Where Synapse reads its own copy of the registration.
    copy = cli(
        "-c", "config.yaml", "snippet", "--synapse-copy", "/etc/synapse/pb.yaml", cwd=tmp_path
    )
    assert YAML(typ="safe").load(copy.stdout)["app_service_config_files"] == [
        "/etc/synapse/pb.yaml"
    ]


def test_snippet_refuses_a_registration_that_is_not_the_configs(tmp_path: Path) -> None:
    generate(tmp_path)
    path = tmp_path / "registration.yaml"
    path.write_text(path.read_text().replace("as_token: ", "as_token: x"))
    result = cli("-c", "config.yaml", "snippet", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "as_token is not the one in config.yaml" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


EXISTING_HOMESERVER_YAML = """\
# Our homeserver.
server_name: "practice.test"
app_service_config_files:
  - /etc/synapse/other-bridge.yaml  # the other bridge
modules:
  - module: other_module.Thing
    config:
      flag: true
  - module: {rules}
    config:
      bot_user_id: "@oldbot:practice.test"
user_directory:
  prefer_local_users: true
  search_all_users: true
"""


def test_snippet_merges_into_the_lists_homeserver_yaml_has(tmp_path: Path) -> None:
    """--merge keeps another bridge's registration and another module, replaces the bridge's
    own earlier entries, keeps comments, and gives the same file when run on its own output."""
    generated = generate(tmp_path)
    rules = generated.snippet["modules"][0]["module"]
    (tmp_path / "homeserver.yaml").write_text(EXISTING_HOMESERVER_YAML.format(rules=rules))
    result = cli("-c", "config.yaml", "snippet", "--merge", "homeserver.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    merged = YAML(typ="safe").load(result.stdout)
    assert merged["server_name"] == "practice.test"
    assert merged["app_service_config_files"] == [
        "/etc/synapse/other-bridge.yaml",
        str(generated.registration_path.resolve()),
    ]
    modules = [entry["module"] for entry in merged["modules"]]
    assert modules == ["other_module.Thing"] + [m["module"] for m in generated.snippet["modules"]]
    assert merged["modules"][0]["config"] == {"flag": True}
    # The profile settings are set; the admin's other user directory keys stay.
    assert merged["user_directory"] == {"prefer_local_users": True, "search_all_users": False}
    assert merged["require_auth_for_profile_requests"] is True
    assert merged["limit_profile_requests_to_users_who_share_rooms"] is True
    assert "# the other bridge" in result.stdout and "# Our homeserver." in result.stdout
    (tmp_path / "merged.yaml").write_text(result.stdout)
    twice = cli("-c", "config.yaml", "snippet", "--merge", "-", cwd=tmp_path, input=result.stdout)
    assert twice.returncode == 0, twice.stderr
    assert twice.stdout == result.stdout


def test_login_rate_limits_are_in_the_snippet_and_the_local_homeserver(tmp_path: Path) -> None:
    """Staff sign in to Matrix apps with a password: Synapse limits sign-ins per address and
    per account, and wrong passwords per account, in production and in `make run` alike; a
    homeserver.yaml with limits of its own keeps them."""
    generated = generate(tmp_path)
    assert generated.snippet["rc_login"] == LOGIN_RATE_LIMITS["rc_login"]
    failed = LOGIN_RATE_LIMITS["rc_login"]["failed_attempts"]
    assert failed["burst_count"] <= 5 and failed["per_second"] <= 0.01
    path = write_homeserver_config(
        tmp_path / "local",
        server_name="practice.test",
        port=8008,
        registration_path=None,
        module=None,
    )
    assert read_homeserver_config(path)["rc_login"] == LOGIN_RATE_LIMITS["rc_login"]
    own = "server_name: practice.test\nrc_login:\n  failed_attempts: {per_second: 0.001}\n"
    merged = cli("-c", "config.yaml", "snippet", "--merge", "-", cwd=tmp_path, input=own)
    assert merged.returncode == 0, merged.stderr
    rc_login = YAML(typ="safe").load(merged.stdout)["rc_login"]
    assert rc_login == {"failed_attempts": {"per_second": 0.001}}


ODD_IDS = [
    "1",
    "c1",
    "Client_7",
    "dr.lee",
    "a-b_c.d",
    "-",
    "_",
    ".",
    "..",
    "UPPER",
    "x" * 64,
    "Z" * 64,
    "_." * 32,
    "0123456789" * 6 + "abcd",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("local_id", ODD_IDS)
def test_namespace_claims_every_portal_user(
    generated: Generated, kind: Kind, local_id: str
) -> None:
    for practice_id in ("p1", "Sunrise.Wellness", "P" * 64):
        user_id = generated.mapper.user_id(kind, practice_id, local_id)
        assert generated.service.is_exclusive_user(user_id), user_id
        assert generated.service.is_user_in_namespace(user_id), user_id


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(KINDS),
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True) | st.text(min_size=1),
)
def test_namespace_claims_random_portal_users(
    generated: Generated, kind: Kind, practice_id: str, local_id: str
) -> None:
    user_id = generated.mapper.user_id(kind, practice_id, local_id)
    assert generated.service.is_exclusive_user(user_id), user_id


def test_namespace_claims_the_bot(generated: Generated) -> None:
    bot = generated.config.bot_mxid
    assert generated.service.is_user_in_namespace(bot)
    assert generated.service.is_exclusive_user(bot)


@pytest.mark.parametrize(
    "user_id",
    [
        "@alice:practice.test",
        "@admin:practice.test",
        "@practicebot2:practice.test",
        "@practicebot:practice.test.evil.example",
        "@practicebot:other.test",
        "@pb_staff_p1_s1:other.test",
        "@pb_staff_p1_s1:practice.test.evil.example",
        "@pb_staff_p1_s1:practice.testing",
        "@pb_admin_p1_s1:practice.test",
        "@pb_staff_p1:practice.test",
        "@pb_staff_p1_s1_extra:practice.test",
        "@xpb_staff_p1_s1:practice.test",
        "@PB_STAFF_P1_S1:practice.test",
    ],
)
def test_namespace_leaves_other_users_alone(generated: Generated, user_id: str) -> None:
    assert not generated.service.is_user_in_namespace(user_id)
    assert not generated.service.is_exclusive_user(user_id)


def test_snippet_loads_the_registration_and_the_module(generated: Generated) -> None:
    out = generated.result.stdout
    assert "app_service_config_files" in out
    snippet = generated.snippet
    assert snippet["app_service_config_files"] == [str(generated.registration_path.resolve())]
    entry, media, logins = snippet["modules"]
    assert entry["module"] == "practice_bridge_synapse.rules.PracticeRules"
    config = PracticeRules.parse_config(entry["config"])
    assert config["bot_user_id"] == generated.config.bot_mxid
    # The attachment policy and practice-only downloads (tests/test_attachments.py).
    assert media["module"] == "practice_bridge_synapse.media.PracticeMedia"
    assert PracticeMedia.parse_config(media["config"])["bot_user_id"] == config["bot_user_id"]
    # Clients sign in only through the bridge (tests/test_app_login.py).
    assert logins["module"] == "practice_bridge_synapse.logins.PracticeLogins"
    assert PracticeLogins.parse_config(logins["config"])["client_regex"] == config["client_regex"]
    # Profiles only for signed-in users who share a room (tests/test_directory_privacy.py).
    assert {key: snippet[key] for key in PRIVACY_SETTINGS} == PRIVACY_SETTINGS


def test_module_config_tells_clients_from_staff(generated: Generated) -> None:
    module = generated.snippet["modules"][0]["config"]
    user_re, client_re = re.compile(module["user_regex"]), re.compile(module["client_regex"])
    mapper = generated.mapper
    for local_id in ODD_IDS:
        client = mapper.user_id("client", "p1", local_id)
        staff = mapper.user_id("staff", "p1", local_id)
        assert user_re.fullmatch(client) and user_re.fullmatch(staff)
        assert client_re.fullmatch(client)
        assert not client_re.fullmatch(staff)
    assert not user_re.fullmatch(generated.config.bot_mxid)
    assert not client_re.fullmatch(generated.config.bot_mxid)


def test_bad_config_stops_generate_registration_without_writing(tmp_path: Path) -> None:
    assert cli("-c", "config.yaml", "generate-config", *REQUIRED, cwd=tmp_path).returncode == 0
    text = (tmp_path / "config.yaml").read_text().replace("port: 29340", "port: nope")
    (tmp_path / "config.yaml").write_text(text)
    result = cli("-c", "config.yaml", "generate-registration", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("practice-bridge: config key 'appservice.port'")
    assert not (tmp_path / "registration.yaml").exists()
    assert (tmp_path / "config.yaml").read_text() == text


def test_unwritable_registration_path_leaves_the_config_alone(tmp_path: Path) -> None:
    assert cli("-c", "config.yaml", "generate-config", *REQUIRED, cwd=tmp_path).returncode == 0
    before = (tmp_path / "config.yaml").read_text()
    result = cli(
        "-c", "config.yaml", "generate-registration", "-r", "missing/dir/reg.yaml", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "config.yaml").read_text() == before
