"""docs/admin.md section 2, run as written: its ``sh ci`` blocks, in order, in one bash script.

What the test brings instead of the guide: its own values for the guide's first block (the
``sh ci-settings`` block: paths in a temporary folder, users and a database of its own), an
"existing" Synapse (a fresh environment with matrix-synapse only, shared with
test_synapse_install, and a homeserver.yaml without the recommended settings), and a shell
function for each ``sh ci:NAME`` block, which the guide shows for systemd (``restart_synapse``,
``start_bridge``). Everything else, the users, folders and ownership, the database, both pip
installs, the config, registration, merge, ``check``, the bridge running as its own user and
the shared secret read back, is the guide's own text.

Expensive: about 20 s on a quiet machine (half of it pip installing the bridge into a fresh
environment from its cache), three minutes under heavy load; each step prints the second it
started at. Needs root (useradd, runuser) and PostgreSQL (PRACTICE_BRIDGE_TEST_POSTGRES);
skipped otherwise.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from registration.hardening import RECOMMENDED
from registration.homeserver import free_port, write_homeserver_config
from tests.clients import cli
from tests.conftest import PG_ENV

ROOT = Path(__file__).resolve().parents[1]
# An administrator's root shell: the system's python3, not this environment's or a pyenv's.
ADMIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUIDE = ROOT / "docs" / "admin.md"
_SECTION = re.compile(r"^## 2\. .*?(?=^## 3\. )", re.S | re.M)
_BLOCK = re.compile(r"^```(\w+)(?: (\S+))?\n(.*?)^```\n", re.S | re.M)
_SETTING = re.compile(r"^([A-Z_]+)=", re.M)


def guide_blocks() -> list[tuple[str, str]]:
    """Section 2's shell blocks marked for this test: (mark, text)."""
    section = _SECTION.search(GUIDE.read_text())
    assert section, "docs/admin.md has no section 2"
    return [
        (mark, text)
        for lang, mark, text in _BLOCK.findall(section.group(0))
        if lang == "sh" and mark and mark.startswith("ci")
    ]


# The harness's own shell functions for the guide's systemd steps, and its clean-up.
FUNCTIONS = r"""
wait_for() {  # wait_for WHAT LOG PID COMMAND...: until COMMAND succeeds, or PID died
    local what=$1 log=$2 pid=$3; shift 3
    for _ in $(seq 1 240); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { echo "$what exited; its log:"; tail -40 "$log"; return 1; }
        sleep 0.5
    done
    echo "$what did not start; its log:"; tail -40 "$log"; return 1
}
home_of() { getent passwd "$1" | cut -d: -f6; }
# Each service runs as its user, with that user's HOME (as systemd's User= does), exec'ed by
# setpriv so that $! is the service itself.
restart_synapse() {
    if [ -n "${SYNAPSE_PID:-}" ]; then kill "$SYNAPSE_PID"; wait "$SYNAPSE_PID" || true; fi
    HOME=$(home_of "$SYNAPSE_USER") setpriv --reuid="$(id -u "$SYNAPSE_USER")" \
        --regid="$(id -g "$SYNAPSE_USER")" --init-groups -- "$SYNAPSE_ENV/bin/python" \
        -m synapse.app.homeserver -c "$SYNAPSE_ETC/homeserver.yaml" >> "$LOGS/synapse.log" 2>&1 &
    SYNAPSE_PID=$!
    wait_for Synapse "$LOGS/synapse.log" "$SYNAPSE_PID" \
        curl -fs "$SYNAPSE_URL/_matrix/client/versions"
}
start_bridge() {
    cd "$PB_ETC"  # systemd's WorkingDirectory=
    HOME=$(home_of "$PB_USER") setpriv --reuid="$(id -u "$PB_USER")" \
        --regid="$(id -g "$PB_USER")" --init-groups -- "$PB_ENV/bin/practice-bridge" \
        -c "$PB_ETC/config.yaml" >> "$LOGS/bridge.log" 2>&1 &
    BRIDGE_PID=$!
    wait_for "the bridge" "$LOGS/bridge.log" "$BRIDGE_PID" \
        grep -q "practice-bridge is running" "$LOGS/bridge.log"
}
stop_services() {
    for pid in ${BRIDGE_PID:-} ${SYNAPSE_PID:-}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${BRIDGE_PID:-} ${SYNAPSE_PID:-}; do wait "$pid" 2>/dev/null || true; done
}
trap stop_services EXIT
"""


def _settings(values: dict[str, str]) -> str:
    return "".join(f"{name}={value}\n" for name, value in values.items())


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A folder every user may enter (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pb-admin-guide-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _drop(psql: list[str], db: str, users: list[str]) -> None:
    subprocess.run(
        [*psql, "-q", "-c", f"DROP DATABASE IF EXISTS {db}", "-c", f"DROP USER IF EXISTS {db}"],
        capture_output=True,
        timeout=60,
    )
    for user in users:
        # Whatever still runs as the test's own users (the script was cut short) ends first.
        found = subprocess.run(["pgrep", "-u", user], capture_output=True, text=True)
        for pid in found.stdout.split():
            subprocess.run(["kill", pid], capture_output=True)
        if found.stdout.strip():
            time.sleep(5)
        subprocess.run(["userdel", user], capture_output=True, timeout=60)


# pip installs the bridge, maybe the Synapse environment too: minutes on a loaded machine.
@pytest.mark.timeout(900)
def test_the_guide_runs_as_written(synapse_only: tuple[Path, set[str]], root_dir: Path) -> None:
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"the guide's database is PostgreSQL: {PG_ENV} is not set")
    if os.geteuid() != 0:
        pytest.skip("the guide runs as root (useradd, runuser)")
    blocks = guide_blocks()
    marks = [mark for mark, _ in blocks]
    assert marks.count("ci-settings") == 1 and marks[0] == "ci-settings", marks

    # The checkout an administrator has (without this one's environments and caches).
    src = root_dir / "src" / "practice-bridge"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "data",
            "data-workers",
            "build",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            ".hypothesis",
            "node_modules",
        ),
    )
    # The existing Synapse: its user, a homeserver.yaml as a default install has it (presence
    # on, federation allowed), its data folder.
    tag = uuid.uuid4().hex[:6]
    synapse_user, bridge_user = f"pbci-syn-{tag}", f"pbci-pb-{tag}"
    db = f"pbci_{tag}"
    host = urlsplit(dsn)
    psql = [
        "psql",
        f"postgresql://{host.username or 'postgres'}@{host.hostname}:{host.port or 5432}/postgres",
    ]
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", synapse_user],
        check=True,
        timeout=60,
    )
    try:
        port, bridge_port = free_port(), free_port()
        synapse_etc = root_dir / "etc" / "synapse"
        data = root_dir / "var" / "lib" / "synapse"
        config = write_homeserver_config(
            data, server_name="practice.test", port=port, registration_path=None, module=None
        )
        settings = YAML(typ="safe").load(config)
        for key in ("presence", "federation_domain_whitelist", "url_preview_enabled"):
            settings.pop(key, None)
        settings["presence"] = {"enabled": True}
        synapse_etc.mkdir(parents=True)
        YAML().dump(settings, synapse_etc / "homeserver.yaml")
        subprocess.run(["chown", "-R", synapse_user, str(data), str(synapse_etc)], check=True)
        python, _ = synapse_only
        values = {
            "SRC": str(src),
            "PB_USER": bridge_user,
            "PB_ETC": str(root_dir / "etc" / "practice-bridge"),
            "PB_ENV": str(root_dir / "opt" / "practice-bridge"),
            "SYNAPSE_USER": synapse_user,
            "SYNAPSE_ENV": str(python.parent.parent),
            "SYNAPSE_ETC": str(synapse_etc),
            "DOMAIN": "practice.test",
            "SYNAPSE_URL": f"http://127.0.0.1:{port}",
            "BRIDGE_PORT": str(bridge_port),
            "PSQL": f'"{" ".join(psql)}"',
            "DB": db,
            "DB_PASSWORD": secrets.token_urlsafe(12),
        }
        # The guide's first block names exactly the values the test gives.
        assert _SETTING.findall(blocks[0][1]) == list(values), "the guide's settings changed"
        logs = root_dir / "logs"
        logs.mkdir()
        script = ["set -euo pipefail", f"LOGS={logs}", _settings(values), FUNCTIONS]
        for mark, text in blocks[1:]:
            if mark.startswith("ci:"):
                function = mark.removeprefix("ci:")
                assert f"\n{function}() {{" in FUNCTIONS, f"no harness step for {mark}"
                text = function
            else:
                assert mark == "ci", mark
            title = shlex.quote(f">>> {mark}: {text.splitlines()[0][:60]}")
            script.append(f'echo {title} "(at ${{SECONDS}} s)"\n{text}')
        (root_dir / "guide.sh").write_text("\n".join(script))
        result = subprocess.run(
            ["bash", str(root_dir / "guide.sh")],
            cwd=root_dir,
            env={**os.environ, "PATH": ADMIN_PATH},
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        print(result.stdout)  # each step with the second it started at (pytest -s shows it)
        assert "is as the config describes" in result.stdout
        assert '"created":true' in result.stdout
        synapse_log = (logs / "synapse.log").read_text()
        assert "practice-bridge module loaded for bot @practicebot:practice.test" in synapse_log
        assert "made @practicebot:practice.test a server admin" in synapse_log
    finally:
        _drop(psql, db, [bridge_user, synapse_user])


def test_the_guide_explains_every_recommended_setting() -> None:
    section = _SECTION.search(GUIDE.read_text())
    assert section
    for key in RECOMMENDED:
        assert f"| `{key}` |" in section.group(0), key


def test_merge_recommended_sets_them_and_keeps_the_rest(tmp_path: Path) -> None:
    result = cli(
        "-c",
        "config.yaml",
        "generate-config",
        "--set=homeserver.domain=practice.test",
        "--set=homeserver.address=http://127.0.0.1:8008",
        "--set=appservice.address=http://127.0.0.1:29340",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert cli("-c", "config.yaml", "generate-registration", cwd=tmp_path).returncode == 0
    existing = "server_name: practice.test\npresence:\n  enabled: true\nmax_upload_size: 50M\n"
    result = cli(
        "-c",
        "config.yaml",
        "snippet",
        "--merge",
        "-",
        "--recommended",
        cwd=tmp_path,
        input=existing,
    )
    assert result.returncode == 0, result.stderr
    merged = YAML(typ="safe").load(result.stdout)
    for key, value in RECOMMENDED.items():
        assert merged[key] == value, key
    assert merged["max_upload_size"] == "50M" and merged["modules"]
    refused = cli("-c", "config.yaml", "snippet", "--recommended", cwd=tmp_path)
    assert refused.returncode == 1 and "--merge" in refused.stderr
