"""The bridge config: loaded with ruamel.yaml round-trip, upgraded from the example, validated.

Loading copies every value the admin set onto the newest example config (comments and new keys
come from the example, values from the admin), writes it back, and validates it. Any problem
becomes one :class:`ConfigError` naming the key and, where known, its line.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mautrix.util.config import BaseFileConfig, ConfigUpdateHelper, RecursiveDict
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from yarl import URL

from bridge.identity import TemplateError, validate_template

EXAMPLE_PATH = Path(__file__).resolve().parent.parent / "example-config.yaml"
PLACEHOLDER_TOKEN = "This value is generated when generating the registration"  # noqa: S105

# Every key the admin may set, copied over when the config is upgraded.
_COPIED = (
    "homeserver.address",
    "homeserver.domain",
    "homeserver.verify_ssl",
    "appservice.address",
    "appservice.hostname",
    "appservice.port",
    "appservice.database",
    "appservice.database_opts",
    "appservice.id",
    "appservice.bot_username",
    "appservice.bot_displayname",
    "appservice.username_template",
    "appservice.as_token",
    "appservice.hs_token",
    "provisioning.prefix",
    "provisioning.shared_secret",
    "provisioning.token_cache_seconds",
    "practice.default_plan",
    "practice.max_text_length",
    "notifications.delay_seconds",
    "notifications.portal_url",
    "notifications.smtp.hostname",
    "notifications.smtp.port",
    "notifications.smtp.security",
    "notifications.smtp.username",
    "notifications.smtp.password",
    "notifications.smtp.from_address",
)
_COPIED_DICTS = ("practice.plans", "logging")


class ConfigError(Exception):
    def __init__(self, key: str, message: str, line: int | None = None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"config key '{key}'{where}: {message}")
        self.key = key
        self.line = line


class Config(BaseFileConfig):
    """The bridge's config file. Values are read with ``config["a.b"]``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path), str(EXAMPLE_PATH))

    def do_update(self, helper: ConfigUpdateHelper) -> None:
        copy, copy_dict, base = helper
        for key in _COPIED:
            copy(key)
        for key in _COPIED_DICTS:
            copy_dict(key)
        # Older configs called the provisioning secret `provisioning.secret`.
        if "provisioning.secret" in self and "provisioning.shared_secret" not in self:
            base["provisioning.shared_secret"] = self["provisioning.secret"]
        if base["provisioning.shared_secret"] == "generate":  # noqa: S105
            base["provisioning.shared_secret"] = secrets.token_urlsafe(32)

    def line_of(self, key: str) -> int | None:
        parts = key.split(".")
        node: Any = self._data
        for part in parts[:-1]:
            if not isinstance(node, CommentedMap) or part not in node:
                return None
            node = node[part]
        if isinstance(node, CommentedMap) and parts[-1] in node:
            try:
                return int(node.lc.key(parts[-1])[0]) + 1
            except (KeyError, TypeError, AttributeError):
                return None
        return None

    @property
    def bot_mxid(self) -> str:
        return f"@{self['appservice.bot_username']}:{self['homeserver.domain']}"

    @property
    def has_tokens(self) -> bool:
        return PLACEHOLDER_TOKEN not in (self["appservice.as_token"], self["appservice.hs_token"])


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_port(v: Any) -> bool:
    return _is_int(v) and 0 < v < 65536


def _is_positive(v: Any) -> bool:
    return _is_int(v) and v > 0


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_http_url(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    url = URL(v)
    return url.scheme in ("http", "https") and bool(url.host)


def _is_prefix(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("/") and not v.endswith("/")


# key, check, what the value must be
_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("homeserver.address", _is_http_url, "an http(s) URL"),
    ("homeserver.domain", _is_nonempty_str, "a server name"),
    ("homeserver.verify_ssl", _is_bool, "true or false"),
    ("appservice.address", _is_http_url, "an http(s) URL"),
    ("appservice.hostname", _is_nonempty_str, "an interface to listen on"),
    ("appservice.port", _is_port, "a port number (1-65535)"),
    ("appservice.database", _is_nonempty_str, "a database URL"),
    ("appservice.id", _is_nonempty_str, "a non-empty string"),
    ("appservice.bot_username", _is_nonempty_str, "a localpart"),
    ("appservice.bot_displayname", _is_str, "a string"),
    ("appservice.username_template", _is_nonempty_str, "a template"),
    ("appservice.as_token", _is_nonempty_str, "a token"),
    ("appservice.hs_token", _is_nonempty_str, "a token"),
    ("provisioning.prefix", _is_prefix, "a path starting with '/' without a trailing '/'"),
    ("provisioning.shared_secret", _is_nonempty_str, "a secret"),
    ("provisioning.token_cache_seconds", _is_int, "a number of seconds"),
    ("practice.default_plan", _is_nonempty_str, "a plan name"),
    ("practice.max_text_length", _is_positive, "a positive integer"),
    ("notifications.delay_seconds", _is_int, "a number of seconds"),
    ("notifications.portal_url", _is_str, "a URL"),
    ("notifications.smtp.hostname", _is_str, "a host name, or empty to turn email off"),
    ("notifications.smtp.port", _is_port, "a port number (1-65535)"),
    (
        "notifications.smtp.security",
        lambda v: v in ("none", "starttls", "tls"),
        "one of none, starttls, tls",
    ),
    ("notifications.smtp.username", _is_str, "a string"),
    ("notifications.smtp.password", _is_str, "a string"),
    ("notifications.smtp.from_address", _is_str, "an email address"),
)


def validate(config: Config) -> None:
    for key, check, expected in _RULES:
        if key not in config or config[key] is None:
            raise ConfigError(key, "is required but missing", config.line_of(key))
        if not check(config[key]):
            raise ConfigError(key, f"must be {expected}, got {config[key]!r}", config.line_of(key))
    scheme = URL(config["appservice.database"]).scheme
    if scheme not in ("sqlite", "sqlite3", "postgres", "postgresql"):
        raise ConfigError(
            "appservice.database",
            f"unknown database scheme '{scheme}' (use sqlite: or postgres://)",
            config.line_of("appservice.database"),
        )
    try:
        validate_template(config["appservice.username_template"])
    except TemplateError as e:
        raise ConfigError(
            "appservice.username_template", str(e), config.line_of("appservice.username_template")
        ) from None
    plans = config["practice.plans"]
    if not isinstance(plans, dict) or not plans:
        raise ConfigError(
            "practice.plans",
            "must map plan names to their features",
            config.line_of("practice.plans"),
        )
    for name, features in plans.items():
        if not isinstance(features, dict) or not all(_is_bool(v) for v in features.values()):
            raise ConfigError(
                f"practice.plans.{name}",
                "must map feature names to true/false",
                config.line_of(f"practice.plans.{name}"),
            )
    if config["practice.default_plan"] not in plans:
        raise ConfigError(
            "practice.default_plan",
            "must name a plan of practice.plans",
            config.line_of("practice.default_plan"),
        )
    if not isinstance(config["logging"], dict):
        raise ConfigError("logging", "must be a logging dictConfig mapping")


def load_config(path: str | os.PathLike[str], *, save: bool = True) -> Config:
    """Load, upgrade and validate the config at ``path``; raise ConfigError on any problem."""
    config = Config(path)
    try:
        config.load()
    except FileNotFoundError:
        raise ConfigError(
            "<file>", f"{path} does not exist; run `practice-bridge generate-config` first"
        ) from None
    except OSError as e:
        raise ConfigError("<file>", f"{path} cannot be read: {e.strerror}") from None
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError("<file>", f"{path} is not valid YAML", line) from None
    if not isinstance(config._data, dict):
        raise ConfigError("<file>", f"{path} must hold a YAML mapping")
    _check_shapes(config)
    config.update(save=save)
    validate(config)
    return config


def _check_shapes(config: Config) -> None:
    """Sections must be mappings before the upgrade copies values out of them."""
    for section in (
        "homeserver",
        "appservice",
        "provisioning",
        "practice",
        "notifications",
        "notifications.smtp",
    ):
        if section in config and not isinstance(config[section], dict):
            raise ConfigError(section, "must be a mapping", config.line_of(section))


def generate_config(path: str | os.PathLike[str], **overrides: Any) -> Config:
    """Write a fresh config from the example, with new secrets and the given overrides."""
    yaml = YAML()
    with open(EXAMPLE_PATH) as f:
        data = RecursiveDict(yaml.load(f), CommentedMap)
    data["provisioning.shared_secret"] = secrets.token_urlsafe(32)
    for key, value in overrides.items():
        data[key] = value
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        yaml.dump(data._data, f)
    os.replace(tmp, path)
    return load_config(path)
