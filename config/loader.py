"""Loading the config file: ruamel.yaml round-trip, upgraded from the example, validated.

Loading copies every value the admin set onto the newest example config (comments and new keys
come from the example, values from the admin) and validates the result against the models of
``config/schema.py``; a valid config is written back when the upgrade changed it. Any problem
becomes one :class:`ConfigError` naming the key and, where known, its line in the file as it is
on disk.

A few keys have no default that could be right for a real deployment (where the homeserver is,
its server name, where Synapse reaches the bridge): marked required in the schema. When the
admin's file lacks one, the upgrade does not take the example's value: start-up stops naming the
key.
"""

from __future__ import annotations

import copy
import io
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mautrix.util.config import BaseFileConfig, ConfigUpdateHelper, RecursiveDict
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import Comment, CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import PlainScalarString

from .fields import ConfigError, KeyInfo, config_error, is_mapping, schema_keys, section_of
from .schema import Config
from .values import GENERATE

EXAMPLE_PATH = Path(__file__).resolve().parent / "example-config.yaml"


def yaml() -> YAML:
    """The round-trip YAML the config is read and written with."""
    parser = YAML()
    parser.preserve_quotes = True
    parser.indent(mapping=4, sequence=4, offset=2)
    parser.width = 200
    return parser


def _dump(data: Any) -> str:
    out = io.StringIO()
    yaml().dump(data, out)
    return out.getvalue()


class ConfigFile(BaseFileConfig):
    """The config file's YAML document (comments and all): upgraded, saved, asked for lines."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path), str(EXAMPLE_PATH))
        # The tree whose line numbers match the file on disk.
        self._lines: Any = None
        #: Keys of the admin's file that this version does not know (dropped by the upgrade).
        self.dropped_keys: list[str] = []

    def load_base(self) -> RecursiveDict[CommentedMap] | None:
        return _example_data()

    def do_update(self, helper: ConfigUpdateHelper) -> None:
        copy_key, _, base = helper
        for key, info in schema_keys(Config):
            if section_of(info) is not None:
                continue
            if not is_mapping(info):
                copy_key(key)
            elif isinstance(self[key], dict):
                _replace_mapping(base, key, self[key])
            old = _old_name(key, info)
            if old is not None and old in self and key not in self:
                base[key] = self[old]
        _fresh_secrets(base)

    def save(self) -> None:
        text = _dump(self._data)
        _write_atomic(self.path, text)
        self._data = yaml().load(text)
        self._lines = self._data

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` in the file on disk (its older name's, or else its parent's)."""
        infos = dict(schema_keys(Config))
        while key:
            line = self._line_of(key)
            old = _old_name(key, infos[key]) if key in infos else None
            if line is None and old is not None:
                line = self._line_of(old)
            if line is not None:
                return line
            key = key.rpartition(".")[0]
        return None

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


def _old_name(key: str, info: Any) -> str | None:
    was = KeyInfo.of(info).was
    if was is None:
        return None
    parent = key.rpartition(".")[0]
    return f"{parent}.{was}" if parent else was


def _fresh_secrets(data: RecursiveDict[CommentedMap]) -> None:
    """Keys marked ``generate`` whose value asks for it get a fresh random secret."""
    for key, info in schema_keys(Config):
        if KeyInfo.of(info).generate and data[key] == GENERATE:
            data[key] = secrets.token_urlsafe(32)


# -- keeping the example's comments where they belong -------------------------------------------


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


# -- the admin's file against the schema --------------------------------------------------------


def _check_shapes(file: ConfigFile, node: Any, model: type[BaseModel], prefix: str) -> None:
    """Sections (and mappings) must be mappings before the upgrade copies values out of them."""
    for name, info in model.model_fields.items():
        section = section_of(info)
        if (section is None and not is_mapping(info)) or name not in node:
            continue
        value = node[name]
        if value is None:
            node[name] = CommentedMap()  # `section:` with nothing under it
        elif not isinstance(value, dict):
            raise file.error(
                f"{prefix}{name}",
                f"must be a mapping (indented 'key: value' lines), got {value!r:.60}",
            )
        elif section is not None:
            _check_shapes(file, value, section, f"{prefix}{name}.")


def _unknown_keys(data: Any, model: type[BaseModel], prefix: str) -> Iterator[str]:
    fields = model.model_fields
    renamed = {KeyInfo.of(info).was for info in fields.values()}
    for key, value in data.items():
        info = fields.get(key) if isinstance(key, str) else None
        if info is None:
            if key not in renamed:
                yield f"{prefix}{key}"
            continue
        section = section_of(info)
        if section is not None and isinstance(value, dict):
            yield from _unknown_keys(value, section, f"{prefix}{key}.")


def _validate(file: ConfigFile) -> Config:
    try:
        config = Config.model_validate(file._data)
    except ValidationError as e:
        raise config_error(e.errors()[0], Config, line_of=file.line_of) from None
    config._file = file
    return config


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
        data = yaml().load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(None, f"is not valid YAML: {problem}", line, path=path) from None
    if not isinstance(data, CommentedMap):
        raise ConfigError(None, "must hold a YAML mapping of sections", path=path)
    file = ConfigFile(path)
    file._data = data
    file._lines = data
    example = file.load_base()
    assert example is not None
    _check_shapes(file, data, Config, "")
    file.dropped_keys = list(_unknown_keys(data, Config, ""))
    missing = [
        key
        for key, info in schema_keys(Config)
        if info.is_required() and section_of(info) is None and key not in file
    ]
    # BaseConfig.update() without reading the example a second time.
    file.do_update(ConfigUpdateHelper(example, file))
    file._data = example._data
    for key in missing:
        file.delete(key)
    config = _validate(file)
    upgraded = _dump(file._data)
    try:
        reloaded = yaml().load(upgraded)
    except YAMLError:
        reloaded = None
    if reloaded != file._data:
        # ruamel cannot write some odd structures (inside logging, say) so that they read back
        # the same; the config then runs as upgraded in memory and the file stays as it is.
        config.bind(file._data)
        return config
    file._data = reloaded
    if upgraded == text:
        file._lines = reloaded
    elif save:
        try:
            _write_atomic(path, upgraded)
            file._lines = reloaded
        except ConfigError:
            pass  # A read-only config still runs; lines refer to the file as it is.
    config.bind(file._data)
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


def generate_config(path: str | os.PathLike[str], **overrides: Any) -> Config:
    """Write a fresh config from the example, with new secrets and the given overrides (by
    dotted key: ``**{"homeserver.domain": "example.com"}``), and load it."""
    write_config(path, **overrides)
    return load_config(path)


def write_config(path: str | os.PathLike[str], **overrides: Any) -> list[str]:
    """Write a fresh config from the example (mode 600), with new secrets and the overrides;
    return the required keys it leaves unset (empty in the file: the config fails until the
    admin sets them). A bad override raises ConfigError and writes nothing."""
    data = _example_data()
    _fresh_secrets(data)
    keys = [(key, info) for key, info in schema_keys(Config) if section_of(info) is None]
    for key, value in overrides.items():
        if not any(key == k or (is_mapping(i) and key.startswith(k + ".")) for k, i in keys):
            raise ConfigError(key, "is not a key of this config (see example-config.yaml)")
        data[key] = value
    unset = [
        key
        for key, info in schema_keys(Config)
        if info.is_required() and section_of(info) is None and data[key] == ""
    ]
    # Check what was given now, with the example's values standing in for the unset keys.
    trial = copy.deepcopy(data)
    for key in unset:
        trial[key] = KeyInfo.of(dict(schema_keys(Config))[key]).example
    path = os.fspath(path)
    with tempfile.TemporaryDirectory() as folder:
        check = os.path.join(folder, "config.yaml")
        _write_atomic(check, _dump(trial._data), mode=0o600)
        load_config(check, save=False)
    _write_atomic(path, _dump(data._data), mode=0o600)
    return unset


def _example_data() -> RecursiveDict[CommentedMap]:
    """The example config, its required keys empty and without quotes of their own (ruamel
    keeps a replaced value's quotes: a value the admin set must not take the example's)."""
    with open(EXAMPLE_PATH) as f:
        data = RecursiveDict(yaml().load(f), CommentedMap)
    for key, info in schema_keys(Config):
        if info.is_required() and section_of(info) is None:
            data[key] = PlainScalarString("")
    return data
