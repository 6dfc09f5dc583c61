"""The bridge config: loaded with ruamel.yaml round-trip, upgraded from the example, validated.

Loading copies every value the admin set onto the newest example config (comments and new keys
come from the example, values from the admin) and validates the result; a valid config is
written back when the upgrade changed it. Any problem becomes one :class:`ConfigError` naming
the key and, where known, its line in the file as it is on disk.

A few keys have no default that could be right for a real deployment (where the homeserver is,
its server name, where Synapse reaches the bridge). When the admin's file lacks one, the upgrade
does not take the example's value: start-up stops naming the key.
"""

from __future__ import annotations

import copy
import io
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mautrix.util.config import BaseFileConfig, ConfigUpdateHelper, RecursiveDict
from ruamel.yaml import YAML
from ruamel.yaml.comments import Comment, CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from yarl import URL

from bridge.constants import ID_PATTERN
from bridge.identity import (
    MAX_USER_ID_LENGTH,
    IdentityMapper,
    TemplateError,
    is_valid_localpart,
    validate_template,
)

EXAMPLE_PATH = Path(__file__).resolve().parent / "example-config.yaml"
PLACEHOLDER_TOKEN = "This value is generated when generating the registration"  # noqa: S105
MIN_SECRET_LENGTH = 16

# Every key the admin may set, copied over when the config is upgraded.
_COPIED = (
    "homeserver.address",
    "homeserver.domain",
    "homeserver.verify_ssl",
    "appservice.address",
    "appservice.hostname",
    "appservice.port",
    "appservice.database",
    "appservice.id",
    "appservice.bot_username",
    "appservice.bot_displayname",
    "appservice.username_template",
    "appservice.as_token",
    "appservice.hs_token",
    "provisioning.prefix",
    "provisioning.shared_secret",
    "provisioning.token_cache_seconds",
    "provisioning.cors_origins",
    "practice.default_plan",
    "practice.max_text_length",
    "attachments.max_size",
    "attachments.blocked_mimetypes",
    "attachments.blocked_extensions",
    "notifications.delay_seconds",
    "notifications.portal_url",
    "notifications.smtp.hostname",
    "notifications.smtp.port",
    "notifications.smtp.security",
    "notifications.smtp.username",
    "notifications.smtp.password",
    "notifications.smtp.from_address",
)
# Mappings copied whole: the admin's version replaces the example's.
_COPIED_DICTS = ("appservice.database_opts", "practice.plans", "attachments.practices", "logging")
# Keys the admin must set: a missing one is refused, never defaulted.
_REQUIRED = ("homeserver.address", "homeserver.domain", "appservice.address")
# Keys of older configs that the upgrade moves (old -> new).
_RENAMED = {"provisioning.secret": "provisioning.shared_secret"}
# Values never repeated in an error message.
_SECRET_KEYS = frozenset(
    {
        "appservice.as_token",
        "appservice.hs_token",
        "provisioning.shared_secret",
        "notifications.smtp.password",
    }
)


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=4, sequence=4, offset=2)
    yaml.width = 200
    return yaml


def _dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


class ConfigError(Exception):
    """A config problem, as one line: ``config key 'a.b' (line 3): must be ...``.

    ``key`` is None for a problem with the file as a whole (missing, unreadable, not YAML).
    """

    def __init__(
        self, key: str | None, message: str, line: int | None = None, *, path: str | None = None
    ) -> None:
        where = f" (line {line})" if line is not None else ""
        what = f"config key '{key}'" if key is not None else f"config file '{path}'"
        super().__init__(f"{what}{where}: {message}")
        self.key = key
        self.line = line
        self.message = message


class Config(BaseFileConfig):
    """The bridge's config file. Values are read with ``config["a.b"]``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path), str(EXAMPLE_PATH))
        # The tree whose line numbers match the file on disk.
        self._lines: Any = None
        #: Keys of the admin's file that this version does not know (dropped by the upgrade).
        self.dropped_keys: list[str] = []

    def load_base(self) -> RecursiveDict[CommentedMap] | None:
        with open(self.base_path) as f:
            return RecursiveDict(_yaml().load(f), CommentedMap)

    def do_update(self, helper: ConfigUpdateHelper) -> None:
        copy, _, base = helper
        for key in _COPIED:
            copy(key)
        for key in _COPIED_DICTS:
            if isinstance(self[key], dict):
                _replace_mapping(base, key, self[key])
        for old, new in _RENAMED.items():
            if old in self and new not in self:
                base[new] = self[old]
        if base["provisioning.shared_secret"] == "generate":  # noqa: S105
            base["provisioning.shared_secret"] = secrets.token_urlsafe(32)

    def save(self) -> None:
        """Write the config atomically, keeping the file's permissions; ConfigError if not."""
        text = _dump(self._data)
        _write_atomic(self.path, text)
        self._data = _yaml().load(text)
        self._lines = self._data

    def line_of(self, key: str) -> int | None:
        line = self._line_of(key)
        if line is None:
            for old, new in _RENAMED.items():
                if key == new:
                    line = self._line_of(old)
        return line

    def _line_of(self, key: str) -> int | None:
        node: Any = self._lines if self._lines is not None else self._data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node, CommentedMap) or part not in node:
                return None
            node = node[part]
        if isinstance(node, CommentedMap) and parts[-1] in node:
            try:
                return int(node.lc.key(parts[-1])[0]) + 1
            except (KeyError, TypeError, AttributeError, IndexError):
                return None
        return None

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(key, message, self.line_of(key))

    @property
    def bot_mxid(self) -> str:
        return f"@{self['appservice.bot_username']}:{self['homeserver.domain']}"

    @property
    def has_tokens(self) -> bool:
        return PLACEHOLDER_TOKEN not in (self["appservice.as_token"], self["appservice.hs_token"])

    def require_tokens(self) -> None:
        """Running needs the tokens that `generate-registration` writes."""
        for key in ("appservice.as_token", "appservice.hs_token"):
            if self[key] == PLACEHOLDER_TOKEN:
                raise self.error(
                    key, "not generated yet; run `practice-bridge generate-registration` first"
                )


def _replace_mapping(base: RecursiveDict[CommentedMap], key: str, value: CommentedMap) -> None:
    """Put the admin's mapping at ``key`` without losing the example's comment after it.

    ruamel keeps a comment that precedes the next key on the last entry of the mapping before
    it (the comment above `id:` lives on `database_opts.max_size`); it moves to the new last
    entry.
    """
    old = base[key]
    new = copy.deepcopy(value)
    setattr(new, Comment.attrib, Comment())
    _block_style(new)
    token = None
    spot = _deepest_last(old)
    if spot is not None:
        token = spot[0].ca.items.get(spot[1], [None, None, None, None])[2]
    base[key] = new
    if not old:
        # The example's mapping is empty (`practices: {}`): the comment after it belongs to the
        # next key there, so the copy the admin's file carries at its end would repeat it.
        _drop_trailing_comment(new)
    target = _deepest_last(new)
    if token is not None and target is not None:
        entry = target[0].ca.items.setdefault(target[1], [None, None, None, None])
        entry[2] = token


def _drop_trailing_comment(node: Any) -> None:
    """Remove the comment ruamel keeps after the last scalar under ``node``."""
    while isinstance(node, CommentedMap | CommentedSeq) and node:
        last = next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1
        if isinstance(node[last], CommentedMap | CommentedSeq) and node[last]:
            node = node[last]
            continue
        entry = node.ca.items.get(last)
        if entry:
            entry[2 if isinstance(node, CommentedMap) else 0] = None
        return


def _block_style(node: Any) -> None:
    """Write mappings as indented blocks: a comment cannot follow an entry of `{a: 1}`."""
    if isinstance(node, CommentedMap):
        node.fa.set_block_style()
        for value in node.values():
            _block_style(value)


def _deepest_last(node: Any) -> tuple[CommentedMap, Any] | None:
    """The mapping and key of the last scalar entry under ``node``, descending into the last
    value while it is a non-empty mapping."""
    while isinstance(node, CommentedMap) and node:
        key = next(reversed(node))
        if isinstance(node[key], CommentedMap) and node[key]:
            node = node[key]
            continue
        if isinstance(node[key], dict | list):
            return None  # an empty mapping or a list: a comment would land inside it
        return node, key
    return None


def _write_atomic(path: str, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` in one step; keeps its permissions (new files: 0600)."""
    directory = os.path.dirname(os.path.abspath(path))
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o600
    try:
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=directory)
    except OSError as e:
        raise ConfigError(None, f"cannot be written: {e.strerror}", path=path) from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError(None, f"cannot be written: {e.strerror}", path=path) from None


# -- checks -------------------------------------------------------------------------------------


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


def _is_seconds(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_http_url(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        url = URL(v)
        return url.scheme in ("http", "https") and bool(url.host) and url.port is not None
    except (ValueError, TypeError):
        return False


def _is_url_or_empty(v: Any) -> bool:
    return v == "" or _is_http_url(v)


_SERVER_NAME = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def _is_server_name(v: Any) -> bool:
    return isinstance(v, str) and _SERVER_NAME.fullmatch(v) is not None


def _is_prefix(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", v) is not None


def _is_localpart(v: Any) -> bool:
    return isinstance(v, str) and is_valid_localpart(v)


def _is_secret(v: Any) -> bool:
    return isinstance(v, str) and len(v.strip()) >= MIN_SECRET_LENGTH


def _is_email_or_empty(v: Any) -> bool:
    return isinstance(v, str) and (v == "" or re.fullmatch(r"[^@\s]+@[^@\s]+", v) is not None)


_STRING_CHECKS = (
    _is_str,
    _is_nonempty_str,
    _is_http_url,
    _is_url_or_empty,
    _is_server_name,
    _is_prefix,
    _is_localpart,
    _is_secret,
    _is_email_or_empty,
)

# key, check, what the value must be
_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("homeserver.address", _is_http_url, "the http(s) URL of the homeserver"),
    ("homeserver.domain", _is_server_name, "the homeserver's server name, e.g. example.com"),
    ("homeserver.verify_ssl", _is_bool, "true or false"),
    ("appservice.address", _is_http_url, "the http(s) URL Synapse reaches the bridge at"),
    ("appservice.hostname", _is_nonempty_str, "an interface to listen on, e.g. 127.0.0.1"),
    ("appservice.port", _is_port, "a port number (1-65535)"),
    ("appservice.database", _is_nonempty_str, "a database URL"),
    ("appservice.id", _is_nonempty_str, "a non-empty string"),
    ("appservice.bot_username", _is_localpart, "a localpart (a-z, 0-9, '.', '_', '=', '-', '/')"),
    ("appservice.bot_displayname", _is_str, "a string"),
    ("appservice.username_template", _is_nonempty_str, "a template"),
    ("appservice.as_token", _is_nonempty_str, "a token"),
    ("appservice.hs_token", _is_nonempty_str, "a token"),
    (
        "provisioning.prefix",
        _is_prefix,
        "a path such as /_matrix/provision/v1 (no trailing '/')",
    ),
    (
        "provisioning.shared_secret",
        _is_secret,
        f"a secret of at least {MIN_SECRET_LENGTH} characters (or 'generate')",
    ),
    ("provisioning.token_cache_seconds", _is_seconds, "a number of seconds (0 or more)"),
    ("practice.default_plan", _is_nonempty_str, "a plan name"),
    ("practice.max_text_length", _is_positive, "a positive integer"),
    ("notifications.delay_seconds", _is_seconds, "a number of seconds (0 or more)"),
    ("notifications.portal_url", _is_url_or_empty, "an http(s) URL"),
    ("notifications.smtp.hostname", _is_str, 'a host name, or "" to turn email off'),
    ("notifications.smtp.port", _is_port, "a port number (1-65535)"),
    (
        "notifications.smtp.security",
        lambda v: v in ("none", "starttls", "tls"),
        "one of none, starttls, tls",
    ),
    ("notifications.smtp.username", _is_str, "a string"),
    ("notifications.smtp.password", _is_str, "a string"),
    ("notifications.smtp.from_address", _is_email_or_empty, "an email address"),
)


def _describe(key: str, value: Any) -> str:
    if key in _SECRET_KEYS:
        return f"a value of type {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(config: Config) -> None:
    """Raise ConfigError for the first problem found, naming the key and its line."""
    expectations = {key: expected for key, _, expected in _RULES}
    for key in _REQUIRED:
        if config[key] in (None, ""):
            raise config.error(key, f"is required: set it to {expectations[key]}")
    for key, check, expected in _RULES:
        value = config[key]
        if value is None:
            raise config.error(key, f"is required: set it to {expected}")
        if not check(value):
            hint = ""
            if check in _STRING_CHECKS and isinstance(value, int | float):
                hint = " (put the value in quotes)"
            raise config.error(key, f"must be {expected}, got {_describe(key, value)}{hint}")
    _validate_database(config)
    _validate_identity(config)
    _validate_plans(config)
    _validate_attachments(config)
    _validate_cors_origins(config)
    _validate_logging(config)


def _validate_database(config: Config) -> None:
    try:
        scheme = URL(config["appservice.database"]).scheme
    except (ValueError, TypeError):
        scheme = ""
    if scheme not in ("sqlite", "sqlite3", "postgres", "postgresql"):
        raise config.error(
            "appservice.database",
            f"unknown database scheme '{scheme}' (use sqlite:<path> or postgres://...)",
        )
    opts = config["appservice.database_opts"]
    if opts is None:
        return
    if not isinstance(opts, dict) or not all(isinstance(k, str) for k in opts):
        raise config.error("appservice.database_opts", "must map option names to values")
    for name in ("min_size", "max_size"):
        if name in opts and not _is_positive(opts[name]):
            raise config.error(f"appservice.database_opts.{name}", "must be a positive integer")
    if _is_int(opts.get("min_size")) and _is_int(opts.get("max_size")):
        if opts["min_size"] > opts["max_size"]:
            raise config.error(
                "appservice.database_opts.min_size", "must not be larger than max_size"
            )


def _validate_identity(config: Config) -> None:
    key = "appservice.username_template"
    try:
        validate_template(config[key])
    except TemplateError as e:
        raise config.error(key, str(e)) from None
    mapper = IdentityMapper(
        config[key], config["homeserver.domain"], config["appservice.bot_username"]
    )
    if mapper.max_user_id_length() > MAX_USER_ID_LENGTH:
        raise config.error(
            key,
            f"with homeserver.domain '{config['homeserver.domain']}', user ids could reach "
            f"{mapper.max_user_id_length()} characters, over Matrix's limit of "
            f"{MAX_USER_ID_LENGTH}; use a shorter template",
        )
    if mapper.is_portal_localpart(config["appservice.bot_username"]):
        raise config.error(
            "appservice.bot_username", f"must not have the shape of {key} (portal users' ids)"
        )


def _validate_plans(config: Config) -> None:
    plans = config["practice.plans"]
    if not isinstance(plans, dict) or not plans:
        raise config.error("practice.plans", "must map plan names to their features")
    for name, features in plans.items():
        if not isinstance(name, str) or not name or "." in name:
            raise config.error("practice.plans", f"has a bad plan name {name!r}")
        if not isinstance(features, dict) or not all(
            isinstance(k, str) and _is_bool(v) for k, v in features.items()
        ):
            raise config.error(f"practice.plans.{name}", "must map feature names to true or false")
    if config["practice.default_plan"] not in plans:
        raise config.error(
            "practice.default_plan",
            f"must name one of practice.plans ({', '.join(str(p) for p in plans)}), "
            f"got {_describe('practice.default_plan', config['practice.default_plan'])}",
        )


_MIMETYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_EXTENSION = re.compile(r"\.?[a-z0-9][a-z0-9_+-]*")
_PRACTICE_ID = re.compile(ID_PATTERN)
ATTACHMENT_KEYS = ("max_size", "blocked_mimetypes", "blocked_extensions")


def _validate_attachment_rules(config: Config, prefix: str, rules: Any, line_key: str) -> None:
    """One set of attachment rules (the defaults, or a practice's); errors name the key."""

    def fail(key: str, message: str) -> ConfigError:
        line = config.line_of(f"{prefix}.{key}") or config.line_of(line_key)
        return ConfigError(f"{prefix}.{key}", message, line)

    if "max_size" in rules and not _is_positive(rules["max_size"]):
        raise fail("max_size", "must be a positive number of bytes")
    for key, pattern, example in (
        ("blocked_mimetypes", _MIMETYPE, "application/x-msdownload"),
        ("blocked_extensions", _EXTENSION, "exe"),
    ):
        if key not in rules:
            continue
        value = rules[key]
        if not isinstance(value, list):
            raise fail(key, f"must be a list such as [{example}]")
        for item in value:
            if not isinstance(item, str) or not pattern.fullmatch(item.lower()):
                raise fail(key, f"has {_describe(key, item)}; entries look like {example}")


def _validate_attachments(config: Config) -> None:
    defaults = {key: config[f"attachments.{key}"] for key in ATTACHMENT_KEYS}
    for key, value in defaults.items():
        if value is None:
            raise config.error(f"attachments.{key}", "is required")
    _validate_attachment_rules(config, "attachments", defaults, "attachments")
    practices = config["attachments.practices"]
    if practices is None:
        return
    if not isinstance(practices, dict):
        raise config.error("attachments.practices", "must map practice ids to attachment rules")
    for practice_id, rules in practices.items():
        where = f"attachments.practices.{practice_id}"
        if not isinstance(practice_id, str) or not _PRACTICE_ID.fullmatch(practice_id):
            raise config.error("attachments.practices", f"has a bad practice id {practice_id!r}")
        if not isinstance(rules, dict):
            raise config.error(where, f"must map any of {', '.join(ATTACHMENT_KEYS)} to values")
        unknown = [k for k in rules if k not in ATTACHMENT_KEYS]
        if unknown:
            raise config.error(
                where, f"has unknown key {unknown[0]!r} (use {', '.join(ATTACHMENT_KEYS)})"
            )
        _validate_attachment_rules(config, where, rules, "attachments.practices")


def _validate_cors_origins(config: Config) -> None:
    origins = config["provisioning.cors_origins"]
    if origins is None:
        return
    if not isinstance(origins, list):
        raise config.error("provisioning.cors_origins", "must be a list of origins")
    for origin in origins:
        if not is_origin(origin):
            raise config.error(
                "provisioning.cors_origins",
                f"has {_describe('', origin)}; an origin looks like https://portal.example.com "
                "(scheme, host and port if not the default; no path)",
            )


def is_origin(value: Any) -> bool:
    """A web origin as browsers send it: ``https://host`` or ``http://host:port``, no path."""
    if not isinstance(value, str):
        return False
    try:
        url = URL(value)
    except (ValueError, TypeError):
        return False
    return (
        url.scheme in ("http", "https")
        and bool(url.host)
        and url.raw_path in ("", "/")
        and not value.endswith("/")
        and not url.query_string
        and not url.fragment
        and not url.user
        and str(url.origin()) == value
    )


def _validate_logging(config: Config) -> None:
    """The shape dictConfig needs; `run` applies it and reports what only that can find."""
    logging_config = config["logging"]
    if not isinstance(logging_config, dict):
        raise config.error("logging", "must be a logging dictConfig mapping")
    if logging_config.get("version") != 1:
        raise config.error("logging", "must have 'version: 1'")
    for section in ("formatters", "filters", "handlers", "loggers"):
        value = logging_config.get(section)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise config.error(f"logging.{section}", "must map names to mappings")
    root = logging_config.get("root")
    if root is not None and not isinstance(root, dict):
        raise config.error("logging.root", "must be a mapping")


# -- loading ------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], *, save: bool = True) -> Config:
    """Load, upgrade and validate the config at ``path``; raise ConfigError on any problem.

    The upgrade happens in memory and is validated there, with line numbers of the file as it
    is; only a valid config is written back, and only when the upgrade changed it (never with
    ``save=False``). A file that cannot be written is used as upgraded in memory.
    """
    path = os.fspath(path)
    text = _read(path)
    try:
        data = _yaml().load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(None, f"is not valid YAML: {problem}", line, path=path) from None
    if not isinstance(data, CommentedMap):
        raise ConfigError(None, "must hold a YAML mapping of sections", path=path)
    config = Config(path)
    config._data = data
    config._lines = data
    example = config.load_base()
    assert example is not None
    _check_shapes(config, example._data)
    config.dropped_keys = list(_unknown_keys(data, example._data, ""))
    missing = [key for key in _REQUIRED if key not in config]
    # BaseConfig.update() without reading the example a second time.
    config.do_update(ConfigUpdateHelper(example, config))
    config._data = example._data
    for key in missing:
        config[key] = ""
    validate(config)
    upgraded = _dump(config._data)
    try:
        reloaded = _yaml().load(upgraded)
    except YAMLError:
        reloaded = None
    if reloaded != config._data:
        # ruamel cannot write some odd structures (inside logging, say) so that they read back
        # the same; the config then runs as upgraded in memory and the file stays as it is.
        return config
    config._data = reloaded
    if upgraded == text:
        config._lines = reloaded
    elif save:
        try:
            _write_atomic(path, upgraded)
            config._lines = reloaded
        except ConfigError:
            pass  # A read-only config still runs; lines refer to the file as it is.
    return config


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(
            None, "does not exist; run `practice-bridge generate-config` first", path=path
        ) from None
    except IsADirectoryError:
        raise ConfigError(None, "is a directory, not a config file", path=path) from None
    except OSError as e:
        raise ConfigError(None, f"cannot be read: {e.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise ConfigError(None, "is not UTF-8 text", path=path) from None


def _sections(example: Any, prefix: str) -> Iterator[str]:
    """The keys whose value is a mapping in the example (not inside mappings copied whole)."""
    for key, value in example.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            yield full
            if full not in _COPIED_DICTS:
                yield from _sections(value, f"{full}.")


def _check_shapes(config: Config, example: Any) -> None:
    """Sections must be mappings before the upgrade copies values out of them."""
    for section in _sections(example, ""):
        parent, _, name = section.rpartition(".")
        container = config[parent] if parent else config._data
        if not isinstance(container, dict) or name not in container:
            continue
        value = container[name]
        if value is None:
            container[name] = CommentedMap()  # `section:` with nothing under it
        elif not isinstance(value, dict):
            raise config.error(
                section, f"must be a mapping (indented 'key: value' lines), got {value!r:.60}"
            )


def _unknown_keys(data: Any, example: Any, prefix: str) -> Iterator[str]:
    for key, value in data.items():
        full = f"{prefix}{key}"
        if full in _RENAMED:
            continue
        if not isinstance(key, str) or key not in example:
            yield full
        elif isinstance(value, dict) and isinstance(example[key], dict):
            if full not in _COPIED_DICTS and full != "appservice.database_opts":
                yield from _unknown_keys(value, example[key], f"{full}.")


def generate_config(path: str | os.PathLike[str], **overrides: Any) -> Config:
    """Write a fresh config from the example, with new secrets and the given overrides."""
    with open(EXAMPLE_PATH) as f:
        data = RecursiveDict(_yaml().load(f), CommentedMap)
    data["provisioning.shared_secret"] = secrets.token_urlsafe(32)
    for key, value in overrides.items():
        data[key] = value
    path = os.fspath(path)
    _write_atomic(path, _dump(data._data), mode=0o600)
    return load_config(path)
