"""`practice-bridge local` (make run) as a person uses it: a real process, HTTP only, Ctrl-C.

Each test runs the command as a subprocess on its own data folder and free ports, talks to the
provisioning API and Synapse over HTTP, and checks that stopping it leaves no Synapse behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.local import LocalError, prepare
from config import load_config
from registration.homeserver import free_port
from registration.workers import Backing

PREFIX = "/_matrix/provision/v1"
START_TIMEOUT = 90
LOCAL = [sys.executable, "-m", "bridge", "local"]  # practice-bridge local (make run)


def _running(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _accepts_connections(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class LocalRun:
    """One `practice-bridge local` process, its output in a file next to the data folder."""

    def __init__(self, data: Path, synapse_port: int, bridge_port: int, name: str) -> None:
        self.data = data
        self.synapse_port = synapse_port
        self.bridge_port = bridge_port
        self.output = data.parent / f"{name}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    *LOCAL,
                    "--data",
                    str(data),
                    "--synapse-port",
                    str(synapse_port),
                    "--bridge-port",
                    str(bridge_port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}{PREFIX}"

    @property
    def synapse(self) -> str:
        return f"http://127.0.0.1:{self.synapse_port}"

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")

    def synapse_pid(self) -> int:
        match = re.search(r"Synapse started \(pid (\d+)\)", self.log_text())
        assert match, self.log_text()
        return int(match.group(1))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        url = f"http://127.0.0.1:{self.bridge_port}/_matrix/mau/ready"
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exited early:\n{self.log_text()}"
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        pytest.fail(f"the bridge was not ready within {START_TIMEOUT}s:\n{self.log_text()}")

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def cleanup(self) -> None:
        """After a failed test: end what this run started."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pid_file = self.data / "synapse.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runs() -> Iterator[list[LocalRun]]:
    started: list[LocalRun] = []
    yield started
    for run in started:
        run.cleanup()


def _ports() -> tuple[int, int]:
    synapse_port = free_port()
    bridge_port = free_port()
    while bridge_port == synapse_port:
        bridge_port = free_port()
    return synapse_port, bridge_port


def _practice_with_owner(run: LocalRun, secret: str, plan: str) -> None:
    """Practice p1 on ``plan`` with its owner Dana, through the provisioning API."""
    status, _ = call(
        "PUT",
        f"{run.api}/practices/p1",
        secret,
        {"name": "Sunrise Wellness", "plan": plan, "timezone": "Europe/Berlin"},
    )
    assert status == 201
    status, _ = call(
        "PUT",
        f"{run.api}/practices/p1/staff/dana",
        secret,
        {"name": "Dana", "email": "dana@example.com", "role": "owner"},
    )
    assert status == 201


def _secret(data: Path) -> str:
    return str(load_config(data / "config.yaml", save=False).provisioning.shared_secret)


def test_local_run_mints_real_sessions_and_ctrl_c_stops_bridge_and_synapse(
    tmp_path: Path, runs: list[LocalRun]
) -> None:
    data = tmp_path / "data"
    run = LocalRun(data, *_ports(), "run")
    runs.append(run)
    run.wait_ready()
    secret = _secret(data)
    synapse_pid = run.synapse_pid()
    assert int((data / "synapse.pid").read_text()) == synapse_pid

    _practice_with_owner(run, secret, "team")
    status, client = call(
        "PUT",
        f"{run.api}/practices/p1/clients/c1",
        secret,
        {"name": "Alex", "email": "alex@example.com", "activated": True, "portal_access": True},
    )
    assert status == 201
    assert client["user_id"] == "@pb_client_p1_c1:localhost"

    status, grant = call("POST", f"{run.api}/practices/p1/sessions", secret, {"client_id": "c1"})
    assert status == 201, grant
    assert grant["homeserver"] == run.synapse
    whoami = f"{run.synapse}/_matrix/client/v3/account/whoami"
    status, who = call("GET", whoami, grant["access_token"])
    assert (status, who["user_id"]) == (200, "@pb_client_p1_c1:localhost")

    status, _ = call("DELETE", f"{run.api}/practices/p1/clients/c1", secret)
    assert status == 200
    status, refused = call("GET", whoami, grant["access_token"])
    assert (status, refused["errcode"]) == (401, "M_UNKNOWN_TOKEN")

    assert run.stop(signal.SIGINT) == 0
    assert not _running(synapse_pid)
    assert not (data / "synapse.pid").exists()
    assert not _accepts_connections(run.synapse_port)
    assert "Synapse stopped" in run.log_text()


def test_second_run_reuses_configs_secrets_and_data(tmp_path: Path, runs: list[LocalRun]) -> None:
    data = tmp_path / "data"
    ports = _ports()
    first = LocalRun(data, *ports, "first")
    runs.append(first)
    first.wait_ready()
    secret = _secret(data)
    tokens = load_config(data / "config.yaml", save=False).appservice.as_token
    registration = (data / "registration.yaml").read_text()
    homeserver = (data / "synapse" / "homeserver.yaml").read_text()
    _practice_with_owner(first, secret, "solo")
    assert first.stop(signal.SIGTERM) == 0

    second = LocalRun(data, *ports, "second")
    runs.append(second)
    second.wait_ready()
    assert _secret(data) == secret
    assert load_config(data / "config.yaml", save=False).appservice.as_token == tokens
    assert (data / "registration.yaml").read_text() == registration
    assert (data / "synapse" / "homeserver.yaml").read_text() == homeserver
    assert "Generated" not in second.log_text()

    status, grant = call(
        "POST", f"{second.api}/practices/p1/sessions", secret, {"staff_id": "dana"}
    )
    assert status == 201, grant
    status, who = call(
        "GET", f"{second.synapse}/_matrix/client/v3/account/whoami", grant["access_token"]
    )
    assert (status, who["user_id"]) == (200, "@pb_staff_p1_dana:localhost")
    synapse_pid = second.synapse_pid()
    assert second.stop(signal.SIGINT) == 0
    assert not _running(synapse_pid)


def test_synapse_is_stopped_when_the_bridge_cannot_start(
    tmp_path: Path, runs: list[LocalRun]
) -> None:
    data = tmp_path / "data"
    synapse_port, bridge_port = _ports()
    prepare(data, synapse_port=synapse_port, bridge_port=bridge_port)
    config = load_config(data / "config.yaml")
    (tmp_path / "not-a-folder").write_text("")
    config.appservice.database = f"sqlite:{tmp_path / 'not-a-folder' / 'bridge.db'}"
    config.save()

    run = LocalRun(data, synapse_port, bridge_port, "run")
    runs.append(run)
    assert run.proc.wait(START_TIMEOUT) == 1
    assert "The bridge could not start" in run.log_text()
    assert not _running(run.synapse_pid())
    assert not (data / "synapse.pid").exists()
    assert not _accepts_connections(synapse_port)


def test_a_one_process_data_folder_is_not_reused_for_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare(data, synapse_port=free_port())
    with pytest.raises(LocalError, match="needs a data folder of its own"):
        prepare(data, workers=Backing())


def test_workers_without_redis_stop_before_anything_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    redis = f"redis://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*LOCAL, "--data", str(data), "--workers", "--redis", redis],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Synapse with workers needs PostgreSQL and Redis: no Redis at 127.0.0.1:" in (
        done.stderr
    )
    assert not data.exists()
