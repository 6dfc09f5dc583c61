"""A Synapse of our own for `make run`, the tests and the benches: loopback only, no federation.

``write_homeserver_config`` is the one place that writes a ``homeserver.yaml`` (our registration
and modules loaded); ``LocalSynapse`` runs it as a child process of the same Python environment,
waits until it answers and stops it. ``registration.workers`` runs the same config as several
processes.
"""

from __future__ import annotations

import copy
import io
import os
import secrets
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from bridge.privacy import SYNAPSE_SETTINGS as PRIVACY_SETTINGS

from .hardening import RECOMMENDED
from .processes import ChildProcess, ProcessGroup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Synapse's login rate limits, for staff signing in to Matrix apps with a password
# (docs/admin.md#brute-force-and-lock-out). The bridge's own logins (the appservice's, for portal
# sessions) are never limited by them.
LOGIN_RATE_LIMITS: dict[str, Any] = {
    "rc_login": {
        # Sign-in requests from one IP address: 10 at once, then one every 20 seconds (a
        # practice's office signs in behind one address).
        "address": {"per_second": 0.05, "burst_count": 10},
        # Successful sign-ins to one account: 5 at once, then one every 5.5 minutes.
        "account": {"per_second": 0.003, "burst_count": 5},
        # Wrong passwords for one account: 5, then one every 5.5 minutes (a lock-out that ends
        # by itself; Synapse's default lets through one every 6 seconds).
        "failed_attempts": {"per_second": 0.003, "burst_count": 5},
    }
}


def _rate_limits_off() -> dict[str, Any]:
    unlimited = {"per_second": 10000, "burst_count": 100000}
    return {
        "bcrypt_rounds": 4,
        "rc_message": unlimited,
        "rc_registration": unlimited,
        "rc_joins": {"local": unlimited, "remote": unlimited},
        "rc_joins_per_room": unlimited,
        "rc_invites": {"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
        "rc_login": {"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
        "rc_admin_redaction": unlimited,
        "rc_3pid_validation": unlimited,
        "rc_presence": {"per_user": unlimited},
        "rc_delayed_event_mgmt": unlimited,
        "rc_room_creation": unlimited,
        "rc_reports": unlimited,
        "rc_media_create": unlimited,
    }


def client_listener(
    port: int, *, x_forwarded: bool = False, metrics: bool = False
) -> dict[str, Any]:
    """A plain HTTP listener on the loopback interface serving the client API (and, with
    ``metrics``, Synapse's Prometheus metrics at ``/_synapse/metrics``)."""
    return {
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        "type": "http",
        "tls": False,
        "x_forwarded": x_forwarded,
        "resources": [{"names": ["client", *(["metrics"] if metrics else [])], "compress": False}],
    }


def write_homeserver_config(
    data_dir: str | os.PathLike[str],
    *,
    server_name: str,
    port: int,
    registration_path: str | os.PathLike[str] | None,
    module: dict[str, Any] | list[dict[str, Any]] | None,
    fast: bool = False,
    settings: Mapping[str, Any] | None = None,
    private: bool = True,
) -> Path:
    """Write ``homeserver.yaml`` (and a signing key) into ``data_dir``; return its path.

    ``port`` is where clients reach Synapse (``public_baseurl``). ``module`` is one ``modules:``
    entry or a list of them (``registration.module_entries``); no registration path means no
    appservice. ``fast`` turns rate limits off and makes password hashing cheap (tests,
    benches). ``settings`` are top-level keys laid over the result (another database, workers).
    ``private`` False leaves out the settings that keep profiles private (``bridge.privacy``):
    a Synapse as it comes, for the test of the bridge's start-up check.
    """
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
        "listeners": [client_listener(port, metrics=True)],
        "database": {"name": "sqlite3", "args": {"database": str(data / "homeserver.db")}},
        "media_store_path": str(data / "media"),
        "signing_key_path": str(key_path),
        "report_stats": False,
        "registration_shared_secret": secrets.token_urlsafe(32),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "app_service_config_files": (
            [str(Path(registration_path).resolve())] if registration_path else []
        ),
        "modules": module if isinstance(module, list) else [module] if module else [],
        "enable_metrics": True,
        **RECOMMENDED,
    }
    config.update(LOGIN_RATE_LIMITS)
    if private:
        config.update(copy.deepcopy(PRIVACY_SETTINGS))
    if fast:
        config.update(_rate_limits_off())
    config.update(settings or {})
    path = data / "homeserver.yaml"
    with open(path, "w") as f:
        YAML().dump(config, f)
    return path


@dataclass(frozen=True)
class SynapseSpec:
    """A Synapse of our own as ``write_homeserver_config`` writes it: its server name, the port
    clients reach it on, the appservice registration (None: no appservice), the modules, and
    ``fast`` (tests and benches); ``private`` False: without the privacy settings."""

    server_name: str
    port: int
    registration_path: str | os.PathLike[str] | None
    modules: list[dict[str, Any]] | None
    fast: bool = False
    private: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(
        self, data_dir: str | os.PathLike[str], settings: Mapping[str, Any] | None = None
    ) -> Path:
        return write_homeserver_config(
            data_dir,
            server_name=self.server_name,
            port=self.port,
            registration_path=self.registration_path,
            module=self.modules,
            fast=self.fast,
            settings=settings,
            private=self.private,
        )


# Where the modules were before they became a package of their own (practice_bridge_synapse).
_FORMER_MODULES = frozenset(
    {"appservice.synapse_module.PracticeRules", "appservice.synapse_media.PracticeMedia"}
)


# Keys of the snippet that an existing homeserver.yaml keeps if it has them.
_KEPT = frozenset({"rc_login"})


def merge_homeserver_config(text: str, entries: Mapping[str, Any]) -> str:
    """An existing homeserver.yaml (``text``) with the bridge's ``entries``
    (``registration.snippet_entries``) merged in, comments and everything else kept: the
    registration path joins ``app_service_config_files`` unless listed, the modules replace
    their own earlier entries in ``modules`` (matched by class, including the classes' former
    names) and join the other modules, ``rc_login`` is added unless the file has its own, a
    mapping's keys are set in the file's mapping of that name (its other keys kept), and any
    other key is set."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = None
    if text.strip():
        # Written back in the file's own indentation, so that the diff shows only the merge.
        _, sequence, offset = load_yaml_guess_indent(text)
        offset = offset or 0
        sequence = sequence or 2
        yaml.indent(mapping=max(sequence - offset, 2), sequence=sequence, offset=offset)
        data = yaml.load(text)
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise ValueError("is not a homeserver.yaml (a YAML mapping)")
    for key, value in entries.items():
        if key == "app_service_config_files":
            files = _list_at(data, key)
            files.extend(path for path in value if path not in files)
        elif key == "modules":
            modules = _list_at(data, key)
            ours = {entry["module"] for entry in value} | _FORMER_MODULES
            keep = [m for m in modules if not (isinstance(m, dict) and m.get("module") in ours)]
            modules[:] = [*keep, *value]
        elif key in _KEPT and key in data:
            continue  # the admin's own choice stands
        elif isinstance(value, Mapping) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _list_at(data: Any, key: str) -> Any:
    value = data.get(key)
    if value is None:
        value = data[key] = CommentedSeq()
    if not isinstance(value, list):
        raise ValueError(f"its {key} is not a list")
    return value


def read_homeserver_config(path: str | os.PathLike[str]) -> Any:
    with open(path) as f:
        return YAML(typ="safe").load(f)


class LocalSynapse(ProcessGroup):
    """One Synapse process on a ``homeserver.yaml``, its output appended to ``log_path``.

    ``start`` returns once the client API answers (and stops what it started if it does not);
    ``stop`` ends it. It may be started again after a stop, on the same data."""

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        log_path: str | os.PathLike[str],
        python: str | os.PathLike[str] = sys.executable,
    ) -> None:
        """``python``: the interpreter of the environment Synapse is installed in (this one by
        default)."""
        self.config_path = Path(config_path).resolve()
        settings = read_homeserver_config(self.config_path)
        self.url = settings["public_baseurl"].rstrip("/")
        self.registration_shared_secret = str(settings["registration_shared_secret"])
        synapse = ChildProcess(
            "Synapse",
            [str(python), "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            Path(log_path),
            ready_url=f"{self.url}/_matrix/client/versions",
        )
        super().__init__([[synapse]])

    @classmethod
    def create(
        cls,
        data_dir: str | os.PathLike[str],
        spec: SynapseSpec,
        *,
        log_path: str | os.PathLike[str],
        settings: Mapping[str, Any] | None = None,
        python: str | os.PathLike[str] = sys.executable,
    ) -> LocalSynapse:
        """Write a fresh ``homeserver.yaml`` for ``spec`` into ``data_dir``."""
        return cls(spec.write(data_dir, settings), log_path, python)
