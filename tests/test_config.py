"""The config file as an admin meets it: generated, upgraded, validated, round-tripped.

Start-up problems are checked through the real command (``python -m bridge -c <path> run``):
each must end in one line naming the key and its line in the file, exit status 2, no traceback.
"""

from __future__ import annotations

import copy
import io
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from bridge.db import create_database
from bridge.identity import IdentityMapper
from config import (
    EXAMPLE_PATH,
    PLACEHOLDER_TOKEN,
    Config,
    ConfigError,
    generate_config,
    load_config,
)
from config.example import example_text
from config.fields import KeyInfo, schema_keys, section_of
from registration import module_entry
from tests.clients import cli

# The keys without a default, with values an admin would give them.
REQUIRED_VALUES = {
    "homeserver.address": "http://127.0.0.1:8008",
    "homeserver.domain": "example.com",
    "appservice.address": "http://127.0.0.1:29340",
}
REQUIRED = tuple(REQUIRED_VALUES)
SET_REQUIRED = [
    arg for key, value in REQUIRED_VALUES.items() for arg in ("--set", f"{key}={value}")
]
ERROR_LINE = re.compile(r"practice-bridge: config (key '[^']+'|file '[^']+')( \(line \d+\))?: .+")


def read_yaml(path: Path) -> Any:
    with open(path) as f:
        return YAML().load(f)


def write_yaml(path: Path, data: Any) -> None:
    with open(path, "w") as f:
        YAML().dump(data, f)


def secret_of(path: Path) -> str:
    return str(read_yaml(path)["provisioning"]["shared_secret"])


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], key: str, path: Path | None = None
) -> str:
    """The run failed with exit 2 and one line naming ``key``; its line number is right."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert ERROR_LINE.fullmatch(line), line
    assert f"config key '{key}'" in line, line
    if path is not None:
        number = re.search(r"\(line (\d+)\)", line)
        assert number, f"no line number in: {line}"
        text = path.read_text().splitlines()[int(number[1]) - 1]
        assert text.strip().startswith(key.rsplit(".", 1)[-1] + ":"), (line, text)
    return line


@pytest.fixture(scope="module")
def good_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config made the way an admin makes one: generate-config, then generate-registration."""
    root = tmp_path_factory.mktemp("good")
    assert cli("-c", "config.yaml", "generate-config", *SET_REQUIRED, cwd=root).returncode == 0
    result = cli("-c", "config.yaml", "generate-registration", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "config.yaml"


@pytest.fixture
def config_path(good_config: Path, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    shutil.copy(good_config, path)
    return path


# -- generate-config -------------------------------------------------------------------------


def test_generate_config_writes_a_fresh_secret_each_time(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a", "b"):
        result = cli("-c", "config.yaml", "generate-config", *SET_REQUIRED, cwd=tmp_path / name)
        assert result.returncode == 0, result.stderr
    first, second = secret_of(tmp_path / "a/config.yaml"), secret_of(tmp_path / "b/config.yaml")
    assert first != second
    assert len(first) >= 32 and first != "generate"
    # It holds a secret: only its owner may read it.
    assert stat.S_IMODE(os.stat(tmp_path / "a/config.yaml").st_mode) == 0o600
    # And it loads as it is.
    assert load_config(tmp_path / "a/config.yaml")["provisioning.shared_secret"] == first


def test_generate_config_leaves_the_keys_without_default_to_the_admin(tmp_path: Path) -> None:
    """Where the homeserver is, its server name and where Synapse reaches the bridge have no
    value that could be right: the file has them empty, and the config fails, naming each, until
    they are set; the hint says so."""
    result = cli("-c", "config.yaml", "generate-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "edit it to set homeserver.address, homeserver.domain and appservice.address" in (
        result.stdout
    )
    path = tmp_path / "config.yaml"
    for key, value in REQUIRED_VALUES.items():
        line = assert_one_line_error(cli("-c", "config.yaml", "run", cwd=tmp_path), key, path)
        assert "is required" in line
        set_key(key, value)(path)
    assert load_config(path)["homeserver.domain"] == "example.com"


def test_generate_config_sets_keys_given_on_the_command_line(tmp_path: Path) -> None:
    result = cli(
        "-c",
        "config.yaml",
        "generate-config",
        *SET_REQUIRED,
        "--set",
        "appservice.port=29341",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Next: practice-bridge generate-registration" in result.stdout
    config = load_config(tmp_path / "config.yaml")
    assert (config.appservice.port, config.homeserver.domain) == (29341, "example.com")
    # Plain YAML: the value is not quoted as the example's empty one was.
    assert "    domain: example.com\n" in (tmp_path / "config.yaml").read_text()
    # A bad value or an unknown key writes nothing and names the key.
    for bad, key in (("appservice.port=nope", "appservice.port"), ("nope.key=1", "nope.key")):
        result = cli("-c", "bad.yaml", "generate-config", "--set", bad, cwd=tmp_path)
        assert result.returncode == 2 and f"config key '{key}'" in result.stderr, result.stderr
        assert not (tmp_path / "bad.yaml").exists()


def test_generate_config_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert cli("-c", "config.yaml", "generate-config", cwd=tmp_path).returncode == 0
    before = (tmp_path / "config.yaml").read_text()
    refused = cli("-c", "config.yaml", "generate-config", cwd=tmp_path)
    assert refused.returncode == 1
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert (tmp_path / "config.yaml").read_text() == before
    forced = cli("-c", "config.yaml", "generate-config", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "config.yaml").read_text() != before


# -- upgrading an older config ---------------------------------------------------------------

OLD_CONFIG = """\
# Sunrise Wellness bridge, set up by hand long ago.
homeserver:
    address: https://matrix.sunrise.example
    domain: sunrise.example
    verify_ssl: false
appservice:
    address: http://bridge.internal:8080
    hostname: 0.0.0.0
    port: 8080
    database: postgres://bridge:pw@db.internal/bridge
    id: sunrise
    bot_username: sunrisebot
    bot_displayname: Sunrise
    username_template: "sr.{kind}.{practice}.{id}"
    as_token: old-as-token-0123456789
    hs_token: old-hs-token-0123456789
    retired_option: 5
provisioning:
    prefix: /portal/v1
    secret: old-portal-secret-0123456789
practice:
    plans:
        basic:
            direct_chat_sharing: false
        pro:
            direct_chat_sharing: true
    default_plan: pro
"""


def test_older_config_is_upgraded_keeping_every_admin_value(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG)
    config = load_config(path)

    expected = {
        "homeserver.address": "https://matrix.sunrise.example",
        "homeserver.domain": "sunrise.example",
        "homeserver.verify_ssl": False,
        "appservice.address": "http://bridge.internal:8080",
        "appservice.hostname": "0.0.0.0",
        "appservice.port": 8080,
        "appservice.database": "postgres://bridge:pw@db.internal/bridge",
        "appservice.id": "sunrise",
        "appservice.bot_username": "sunrisebot",
        "appservice.bot_displayname": "Sunrise",
        "appservice.username_template": "sr.{kind}.{practice}.{id}",
        "appservice.as_token": "old-as-token-0123456789",
        "appservice.hs_token": "old-hs-token-0123456789",
        "provisioning.prefix": "/portal/v1",
        # The old key's value moved to the new key.
        "provisioning.shared_secret": "old-portal-secret-0123456789",
        "practice.default_plan": "pro",
        # New keys arrive with the example's values.
        "provisioning.token_cache_seconds": 60,
        "notifications.delay_seconds": 300,
        "notifications.smtp.security": "starttls",
        "notifications.smtp.hostname": "",
        "practice.max_text_length": 4096,
    }
    on_disk = load_config(path, save=False)
    for key, value in expected.items():
        assert config[key] == value, key
        assert on_disk[key] == value, key
    # The admin's plans replace the example's, not merge with them.
    assert dict(on_disk["practice.plans"]) == {
        "basic": {"direct_chat_sharing": False},
        "pro": {"direct_chat_sharing": True},
    }
    assert "logging" in on_disk._data
    text = path.read_text()
    assert "    secret:" not in text and "retired_option" not in text
    assert config.dropped_keys == ["appservice.retired_option"]
    # The new keys come with the example's comments, and no comment of the example is lost.
    assert "# Email notifications. Off while smtp.hostname is empty." in text
    for comment in example_comments():
        assert comment in text, comment
    # Loading the upgraded file again changes nothing.
    load_config(path)
    assert path.read_text() == text


FLOW_STYLE_CONFIG = """\
homeserver: {address: "https://matrix.sunrise.example", domain: sunrise.example}
appservice: {address: "http://bridge.internal:8080", database_opts: {min_size: 2}}
practice: {plans: {basic: {direct_chat_sharing: false}}, default_plan: basic}
"""


def test_upgrade_of_flow_style_sections_keeps_every_comment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FLOW_STYLE_CONFIG)
    config = load_config(path)
    assert config["appservice.database_opts"] == {"min_size": 2}
    assert dict(config["practice.plans"]) == {"basic": {"direct_chat_sharing": False}}
    text = path.read_text()
    for comment in example_comments():
        assert comment in text, comment
    # Each comment still sits right above the key it documents.
    lines = text.splitlines()
    assert (
        lines[lines.index("    id: practice-bridge") - 1]
        .strip()
        .startswith("# The registration id")
    )
    assert lines[lines.index("    default_plan: basic") - 1].strip().startswith("# The plan")


def test_upgrade_keeps_the_files_permissions(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG)
    os.chmod(path, 0o640)
    load_config(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_upgrade_reports_keys_it_dropped_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(OLD_CONFIG)
    result = cli("-c", "config.yaml", "generate-registration", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "appservice.retired_option" in result.stderr


def test_invalid_old_config_is_not_rewritten_and_its_line_is_the_files(tmp_path: Path) -> None:
    """The port is on line 9 of the old layout; the upgrade would move it, but an invalid
    config is reported against the file as it is and left alone."""
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG.replace("port: 8080", "port: eighty"))
    result = cli("-c", "config.yaml", "run", cwd=tmp_path)
    line = assert_one_line_error(result, "appservice.port", path)
    assert "(line 9)" in line
    assert path.read_text() == OLD_CONFIG.replace("port: 8080", "port: eighty")


def test_renamed_key_is_reported_at_its_old_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG.replace("secret: old-portal-secret-0123456789", "secret: short"))
    result = cli("-c", "config.yaml", "run", cwd=tmp_path)
    line = assert_one_line_error(result, "provisioning.shared_secret")
    assert "(line 20)" in line and "short" not in line


def test_read_only_config_is_upgraded_in_memory(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "config.yaml"
    path.write_text(OLD_CONFIG)
    os.chmod(folder, 0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable anyway")
        config = load_config(path)
        assert config["provisioning.shared_secret"] == "old-portal-secret-0123456789"
        assert config["notifications.smtp.security"] == "starttls"
        assert path.read_text() == OLD_CONFIG
    finally:
        os.chmod(folder, 0o700)


# -- comments --------------------------------------------------------------------------------


def example_comments() -> list[str]:
    return [
        line.strip() for line in EXAMPLE_PATH.read_text().splitlines() if line.strip()[:1] == "#"
    ]


def test_comments_survive_a_load_save_round_trip(config_path: Path) -> None:
    before = config_path.read_text()
    config = load_config(config_path)
    config.save()
    assert config_path.read_text() == before
    config["notifications.delay_seconds"] = 120
    config.save()
    after = config_path.read_text()
    for comment in example_comments():
        assert comment in after, comment
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert changed == [("    delay_seconds: 300", "    delay_seconds: 120")]


FREE_FORM = ("practice.plans", "logging", "appservice.database_opts")


def test_every_key_of_the_example_is_documented() -> None:
    """Each key has a comment above it, alone or shared with the siblings right after it
    (hostname and port share one). Inside free-form mappings (plans, the logging dictConfig,
    pool arguments) the mapping's own comment covers its contents."""
    lines = EXAMPLE_PATH.read_text().splitlines()
    parents: list[tuple[int, str]] = []
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"( *)([a-z_]+):", line)
        if not match:
            continue
        indent, key = len(match[1]), match[2]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = ".".join([p for _, p in parents] + [key])
        parents.append((indent, key))
        if any(path.startswith(f"{free}.") for free in FREE_FORM):
            continue
        documented = False
        for above in reversed(lines[:i]):
            above_indent = len(above) - len(above.lstrip())
            if above.strip().startswith("#") and above_indent == indent:
                documented = True
                break
            if not above.strip() or above_indent < indent:
                break
        if not documented:
            undocumented.append(path)
    assert undocumented == []


# -- start-up refuses bad configs with one clear line ----------------------------------------


_ABSENT = object()


def set_key(key: str, value: Any) -> Callable[[Path], None]:
    """Changes ``key`` in the file to ``value`` (or deletes it), as an admin's editor would."""

    def mutate(path: Path) -> None:
        data = read_yaml(path)
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        if value is _ABSENT:
            del node[last]
        else:
            node[last] = value
        write_yaml(path, data)

    return mutate


def delete_key(key: str) -> Callable[[Path], None]:
    return set_key(key, _ABSENT)


def bad(
    key: str, value: Any, words: str, *, named: str | None = None
) -> tuple[str, Callable[[Path], None], str]:
    """A bad-value case: ``key`` set to ``value``; the one error line names ``named`` (the key
    itself, unless said otherwise) and says ``words``."""
    return named or key, set_key(key, value), words


BAD_VALUES = {
    "port_is_text": bad("appservice.port", "abc", "port number"),
    "port_out_of_range": bad("appservice.port", 70000, "port number"),
    "verify_ssl_is_text": bad("homeserver.verify_ssl", "yes", "true or false"),
    "domain_empty": bad("homeserver.domain", "", "is required"),
    "domain_with_spaces": bad("homeserver.domain", "my server", "server name"),
    "address_not_a_url": bad("homeserver.address", "matrix.example.com", "http(s) URL"),
    "mysql": bad(
        "appservice.database", "mysql://bridge@db/bridge", "unknown database scheme 'mysql'"
    ),
    "database_opts_not_numbers": bad(
        "appservice.database_opts.max_size", "ten", "positive integer"
    ),
    "section_is_text": bad("appservice", "everything", "mapping"),
    "section_is_a_list": bad("provisioning", [1, 2], "mapping"),
    "smtp_is_text": bad("notifications.smtp", "on", "mapping"),
    "template_without_id": bad("appservice.username_template", "pb_{kind}_{practice}", "{id}"),
    "template_ambiguous": bad(
        "appservice.username_template", "pb_{kind}-{practice}-{id}", "separated"
    ),
    "template_too_long_for_the_domain": bad(
        "homeserver.domain", "d" * 120 + ".example", "255", named="appservice.username_template"
    ),
    "bot_shaped_like_a_portal_user": bad("appservice.bot_username", "pb_staff_bot_one", "shape"),
    "default_plan_unknown": bad("practice.default_plan", "gold", "solo, plus, team"),
    "plans_empty": bad("practice.plans", {}, "plan names"),
    "plan_feature_not_bool": bad(
        "practice.plans.solo.direct_chat_sharing",
        "sometimes",
        "true or false",
        named="practice.plans.solo",
    ),
    "smtp_security_unknown": bad("notifications.smtp.security", "ssl", "none, starttls, tls"),
    "prefix_trailing_slash": bad("provisioning.prefix", "/_matrix/provision/v1/", "trailing"),
    "logging_not_a_mapping": bad("logging", "verbose", "mapping"),
    "logging_wrong_version": bad("logging.version", 2, "version: 1", named="logging"),
    "logging_unknown_handler_class": bad(
        "logging.handlers.console.class", "logging.NoSuchHandler", "NoSuchHandler", named="logging"
    ),
    "logging_unknown_level": bad("logging.root.level", "LOUD", "LOUD", named="logging"),
    "logging_missing_formatter": bad(
        "logging.handlers.console.formatter", "fancy", "fancy", named="logging"
    ),
}


@pytest.mark.parametrize("case", list(BAD_VALUES), ids=list(BAD_VALUES))
def test_bad_value_stops_start_up_with_one_line(config_path: Path, case: str) -> None:
    key, mutate, words = BAD_VALUES[case]
    mutate(config_path)
    result = cli("-c", str(config_path), "run", cwd=config_path.parent)
    line = assert_one_line_error(result, key, config_path)
    assert words in line


def test_short_secret_is_refused_without_repeating_it(config_path: Path) -> None:
    set_key("provisioning.shared_secret", "hunter2")(config_path)
    result = cli("-c", str(config_path), "run", cwd=config_path.parent)
    line = assert_one_line_error(result, "provisioning.shared_secret", config_path)
    assert "at least 16" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_number_where_a_string_belongs_gets_a_hint(config_path: Path) -> None:
    set_key("appservice.bot_username", 1234)(config_path)
    result = cli("-c", str(config_path), "run", cwd=config_path.parent)
    assert "quotes" in assert_one_line_error(result, "appservice.bot_username", config_path)


def test_tokens_still_at_their_placeholder_stop_run(tmp_path: Path) -> None:
    assert cli("-c", "config.yaml", "generate-config", *SET_REQUIRED, cwd=tmp_path).returncode == 0
    result = cli("-c", "config.yaml", "run", cwd=tmp_path)
    line = assert_one_line_error(result, "appservice.as_token", tmp_path / "config.yaml")
    assert "generate-registration" in line
    assert PLACEHOLDER_TOKEN in (tmp_path / "config.yaml").read_text()


@pytest.mark.parametrize("key", ["homeserver.domain", "homeserver.address", "appservice.address"])
def test_deleted_key_without_a_fitting_default_stops_start_up(config_path: Path, key: str) -> None:
    """A deleted key is normally filled in from the example on upgrade. Not these: the
    example's 'localhost' would make the bridge run against the wrong server. Start-up names
    the key, and the file is not rewritten with a guess, so it does so every time."""
    delete_key(key)(config_path)
    before = config_path.read_text()
    for _ in range(2):
        result = cli("-c", str(config_path), "run", cwd=config_path.parent)
        assert "is required" in assert_one_line_error(result, key)
        assert config_path.read_text() == before


def test_null_required_key_counts_as_missing(config_path: Path) -> None:
    set_key("homeserver.domain", None)(config_path)
    result = cli("-c", str(config_path), "run", cwd=config_path.parent)
    assert_one_line_error(result, "homeserver.domain", config_path)


def test_deleted_key_with_a_safe_default_is_filled_in(config_path: Path) -> None:
    delete_key("notifications.delay_seconds")(config_path)
    delete_key("provisioning.token_cache_seconds")(config_path)
    config = load_config(config_path)
    assert config["notifications.delay_seconds"] == 300
    assert config["provisioning.token_cache_seconds"] == 60
    assert "    delay_seconds: 300" in config_path.read_text()


def test_empty_section_means_its_keys_are_missing(config_path: Path) -> None:
    set_key("homeserver", None)(config_path)
    result = cli("-c", str(config_path), "run", cwd=config_path.parent)
    assert "is required" in assert_one_line_error(result, "homeserver.address")


FILE_PROBLEMS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda d: d / "nope.yaml", "does not exist"),
    "a_directory": (lambda d: d, "is a directory"),
    "under_a_file": (lambda d: d / "config.yaml" / "inner.yaml", "cannot be read"),
    "invalid_yaml": (
        lambda d: _write(d / "bad.yaml", "homeserver:\n  address: [unclosed\nappservice: {}\n"),
        "not valid YAML",
    ),
    "tab_indent": (
        lambda d: _write(d / "bad.yaml", "homeserver:\n\taddress: x\n"),
        "not valid YAML",
    ),
    "duplicate_key": (
        lambda d: _write(d / "bad.yaml", "homeserver: {}\nhomeserver: {}\n"),
        "not valid YAML",
    ),
    "empty": (lambda d: _write(d / "bad.yaml", ""), "YAML mapping"),
    "a_list": (lambda d: _write(d / "bad.yaml", "- homeserver\n"), "YAML mapping"),
    "binary": (lambda d: _write_bytes(d / "bad.yaml", b"\xff\xfe\x00garbage"), "UTF-8"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(FILE_PROBLEMS), ids=list(FILE_PROBLEMS))
def test_file_problem_stops_start_up_with_one_line(config_path: Path, case: str) -> None:
    make, words = FILE_PROBLEMS[case]
    target = make(config_path.parent)
    result = cli("-c", str(target), "run", cwd=config_path.parent)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ERROR_LINE.fullmatch(lines[0]), result.stderr
    assert f"config file '{target}'" in lines[0]
    assert words in lines[0]


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "homeserver:\n    domain: a\n  address: b\n")
    result = cli("-c", str(path), "run", cwd=tmp_path)
    assert re.search(r"\(line [23]\)", result.stderr), result.stderr


def test_unreadable_file_stops_start_up_with_one_line(config_path: Path) -> None:
    os.chmod(config_path, 0)
    try:
        if os.access(config_path, os.R_OK):
            pytest.skip("running as root reads any file; the other file cases cover this path")
        result = cli("-c", str(config_path), "run", cwd=config_path.parent)
        assert result.returncode == 2 and "cannot be read" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        os.chmod(config_path, 0o600)


def test_generate_registration_reports_bad_config_the_same_way(config_path: Path) -> None:
    set_key("appservice.port", "abc")(config_path)
    result = cli("-c", str(config_path), "generate-registration", cwd=config_path.parent)
    assert_one_line_error(result, "appservice.port", config_path)


# -- fuzzing ---------------------------------------------------------------------------------


def _valid_data() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        generate_config(path, **REQUIRED_VALUES)
        config = load_config(path)
        config["appservice.as_token"] = "as-token-0123456789"
        config["appservice.hs_token"] = "hs-token-0123456789"
        return _plain(config._data)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in node.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


VALID = _valid_data()
PATHS = sorted(_paths(VALID))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["", "generate", "sqlite:", "postgres://", "http://", "{kind}", "solo"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
mutations = st.lists(
    st.tuples(st.sampled_from(PATHS), values | st.just(_DELETE := object())),
    min_size=1,
    max_size=4,
)


def _apply(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            return  # an earlier mutation replaced the section
        node = node[part]
    if value is _DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


def _load_or_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(text)
        try:
            config = load_config(path)
        except ConfigError as e:
            assert str(e).startswith("config ")
            assert "\n" not in str(e)
            return
        # What loads must be usable by what the bridge builds from it.
        IdentityMapper(
            config["appservice.username_template"],
            config["homeserver.domain"],
            config["appservice.bot_username"],
        )
        module_entry(config)
        create_database(config["appservice.database"], dict(config["appservice.database_opts"]))
        assert load_config(path, save=False)._data == config._data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations)
def test_fuzzed_values_load_or_raise_config_error(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    data = copy.deepcopy(VALID)
    for path, value in changes:
        _apply(data, path, value)
    out = io.StringIO()
    YAML().dump(data, out)
    _load_or_config_error(out.getvalue())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_text_edits_load_or_raise_config_error(data: st.DataObject) -> None:
    out = io.StringIO()
    YAML().dump(VALID, out)
    lines = out.getvalue().splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        edit = data.draw(st.sampled_from(["replace", "insert", "delete", "indent"]))
        if edit == "delete":
            del lines[i]
        elif edit == "indent":
            lines[i] = data.draw(st.sampled_from([" ", "\t", "  "])) + lines[i]
        else:
            junk = data.draw(st.text(alphabet=":-[]{}#&*!|>'\"%@` \tabc12.", max_size=20))
            if edit == "replace":
                lines[i] = junk
            else:
                lines.insert(i, junk)
    _load_or_config_error("\n".join(lines) + "\n")


# -- the example is written from the schema --------------------------------------------------


def test_example_config_is_written_from_the_schema() -> None:
    """Each key is described once, in config/schema.py; `make example-config` writes the file."""
    assert EXAMPLE_PATH.read_text() == example_text(), "run `make example-config`"


def test_the_example_loads_as_the_schemas_defaults(tmp_path: Path) -> None:
    """What the file shows is what the models hold: a config made from it reads back every
    example value once the required keys (empty there: they have no default) are set."""
    path = tmp_path / "config.yaml"
    shutil.copy(EXAMPLE_PATH, path)
    with pytest.raises(ConfigError, match="'homeserver.address' .*is required"):
        load_config(path, save=False)
    for key in REQUIRED:
        section, name = key.split(".")
        assert read_yaml(path)[section][name] == ""
    for key, value in REQUIRED_VALUES.items():
        set_key(key, value)(path)
    config = load_config(path, save=False)
    for key, info in schema_keys(Config):
        about = KeyInfo.of(info)
        if section_of(info) is None and not about.generate:
            assert info.is_required() == (key in REQUIRED), key
            assert config[key] == REQUIRED_VALUES.get(key, about.example), key
