"""A local Synapse for `make run` and the tests: SQLite, loopback only, no federation.

Writes a homeserver.yaml in a data folder with our registration and module loaded, and starts
Synapse as a subprocess of the same Python environment.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_homeserver_config(
    data_dir: str | os.PathLike[str],
    *,
    server_name: str,
    port: int,
    registration_path: str | os.PathLike[str],
    module: dict[str, Any] | list[dict[str, Any]] | None,
    fast: bool = False,
) -> Path:
    """Write ``homeserver.yaml`` (and a signing key) into ``data_dir``; return its path.

    ``module`` is one ``modules:`` entry or a list of them (``registration.module_entries``)."""
    from signedjson.key import generate_signing_key, write_signing_keys

    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    key_path = data / "signing.key"
    if not key_path.exists():
        with open(key_path, "w") as f:
            write_signing_keys(f, [generate_signing_key("a_" + secrets.token_hex(2))])
    config: dict[str, Any] = {
        "server_name": server_name,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(data / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data / "homeserver.db")}},
        "media_store_path": str(data / "media"),
        "signing_key_path": str(key_path),
        "report_stats": False,
        "registration_shared_secret": secrets.token_urlsafe(32),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "enable_registration": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "app_service_config_files": [str(Path(registration_path).resolve())],
        "modules": module if isinstance(module, list) else [module] if module else [],
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "enable_metrics": False,
        "allow_public_rooms_over_federation": False,
    }
    if fast:
        unlimited = {"per_second": 10000, "burst_count": 100000}
        config.update(
            {
                "bcrypt_rounds": 4,
                "rc_message": unlimited,
                "rc_registration": unlimited,
                "rc_joins": {"local": unlimited, "remote": unlimited},
                "rc_joins_per_room": unlimited,
                "rc_invites": {
                    "per_room": unlimited,
                    "per_user": unlimited,
                    "per_issuer": unlimited,
                },
                "rc_login": {
                    "address": unlimited,
                    "account": unlimited,
                    "failed_attempts": unlimited,
                },
                "rc_admin_redaction": unlimited,
                "rc_3pid_validation": unlimited,
                "rc_presence": {"per_user": unlimited},
                "rc_delayed_event_mgmt": unlimited,
                "rc_room_creation": unlimited,
                "rc_reports": unlimited,
                "rc_media_create": unlimited,
            }
        )
    path = data / "homeserver.yaml"
    with open(path, "w") as f:
        YAML().dump(config, f)
    return path


def start_synapse(
    config_path: str | os.PathLike[str],
    log_path: str | os.PathLike[str],
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env or os.environ.copy(),
    )


def wait_for_synapse(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Synapse exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{base_url}/_matrix/client/versions", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"Synapse did not answer on {base_url} within {timeout:.0f}s")
