"""How one config key is described, and how the schema is walked.

A key is a field of a section model (``config/schema.py``): its annotation is a value type
(``config/values.py``: a strict pydantic type with what the value must be, said once as
:class:`Must`), and its default is :func:`key`, which holds the rest: the comment
example-config.yaml shows above it, the example's value, whether the admin must set it, whether
it is a secret, its older name. Errors, the example file and the upgrade all read these.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonDict
from pydantic_core import ErrorDetails, PydanticCustomError, PydanticUndefined
from ruamel.yaml.comments import CommentedMap


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


@dataclass(frozen=True)
class Must:
    """What a value of a type must be, as errors say it: ``must be <text>, got ...``."""

    text: str


def key(
    comment: str = "",
    default: Any = PydanticUndefined,
    *,
    required: bool = False,
    must: str | None = None,
    secret: bool = False,
    was: str | None = None,
    generate: bool = False,
) -> Any:
    """One key of the config, described once.

    ``comment`` goes above the key in example-config.yaml (empty: the comment above the key
    before it covers this one too). ``default`` is the example's value and the value of a key
    the admin's file lacks; with ``required`` it is only the example's, and a file without the
    key is refused instead. ``must`` says what the value must be where the type's own words
    are too general. A ``secret`` is never repeated in an error. ``was`` is the key's name in
    older configs (same section); the upgrade moves its value. With ``generate``, the value
    ``generate`` becomes a fresh random secret when the config is loaded.
    """
    extra: JsonDict = {}
    if must is not None:
        extra["must"] = must
    if secret:
        extra["secret"] = True
    if was is not None:
        extra["was"] = was
    if generate:
        extra["generate"] = True
    if required:
        return Field(description=comment, examples=[default], json_schema_extra=extra)
    return Field(default, description=comment, json_schema_extra=extra)


@dataclass(frozen=True)
class KeyInfo:
    """What :func:`key` said about a field, read back."""

    comment: str
    example: Any
    required: bool
    must: str | None
    secret: bool
    was: str | None
    generate: bool

    @classmethod
    def of(cls, info: FieldInfo) -> KeyInfo:
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        required = info.is_required()
        must = extra.get("must")
        was = extra.get("was")
        return cls(
            comment=info.description or "",
            example=(info.examples or [None])[0] if required else info.default,
            required=required,
            must=must if isinstance(must, str) else must_of([*info.metadata, info.annotation]),
            secret=extra.get("secret") is True,
            was=was if isinstance(was, str) else None,
            generate=extra.get("generate") is True,
        )


def must_of(metadata: Any) -> str | None:
    """What a value must be, from a type's metadata: the outermost :class:`Must` (the last one),
    looking into ``Annotated`` types and ``X | None``."""
    for item in reversed(list(metadata)):
        if isinstance(item, Must):
            return item.text
        origin = get_origin(item)
        if origin is Annotated:
            found = must_of([get_args(item)[0], *item.__metadata__])
        elif origin in (Union, types.UnionType):
            found = must_of(get_args(item))
        else:
            continue
        if found:
            return found
    return None


def invalid(message: str, key: str | None = None) -> PydanticCustomError:
    """An error said as it is, about the value being checked or its ``key`` below it."""
    return PydanticCustomError("config", "{message}", {"message": message, "key": key})


class Section(BaseModel):
    """A mapping of the config file. Values are checked strictly (no ``"yes"`` for true, no
    ``"80"`` for 80); an assignment is checked too, and lands in the file's document so that
    ``save()`` writes it with every comment kept."""

    model_config = ConfigDict(strict=True, validate_assignment=True, extra="ignore")

    _document: Any = PrivateAttr(default=None)
    _path: tuple[str, ...] = PrivateAttr(default=())

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as e:
            raise config_error(e.errors()[0], type(self), self._path) from None
        if self._document is None or name not in type(self).model_fields:
            return
        node = self._document
        for part in self._path:
            node = node[part]
        new = getattr(self, name)
        if node.get(name) != new:
            node[name] = new.model_dump() if isinstance(new, BaseModel) else new

    def bind(self, document: CommentedMap, path: tuple[str, ...] = ()) -> None:
        """Write later assignments to this section into ``document`` (the file's YAML tree)."""
        self._document = document
        self._path = path
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Section):
                value.bind(document, (*path, name))


# -- walking the schema -------------------------------------------------------------------------


def schema_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every key below ``model`` as (dotted key, field): a section, then the keys in it."""
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info
        section = section_of(info)
        if section is not None:
            yield from schema_keys(section, f"{prefix}{name}.")


def section_of(info: FieldInfo) -> type[Section] | None:
    """The section model of a field that is a section (its keys are upgraded one by one)."""
    kind = info.annotation
    return kind if isinstance(kind, type) and issubclass(kind, Section) else None


def is_mapping(info: FieldInfo) -> bool:
    """Whether a field is a free-form mapping (the admin's one replaces the example's whole)."""
    return dict_types(info.annotation) is not None


def _bare(kind: Any) -> Any:
    """``kind`` without Annotated metadata and without ``| None``."""
    while True:
        origin = get_origin(kind)
        if origin is Annotated:
            kind = get_args(kind)[0]
        elif origin in (Union, types.UnionType):
            options = [arg for arg in get_args(kind) if arg is not type(None)]
            if len(options) != 1:
                return kind
            kind = options[0]
        else:
            return kind


def model_of(kind: Any) -> type[BaseModel] | None:
    """The model ``kind`` is (through Annotated and ``| None``), if it is one."""
    kind = _bare(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def dict_types(kind: Any) -> tuple[Any, Any] | None:
    """The key and value types of ``kind`` if it is a ``dict[K, V]``."""
    kind = _bare(kind)
    if get_origin(kind) is not dict:
        return None
    key_type, value_type = get_args(kind)
    return key_type, value_type


# -- errors as the admin reads them ----------------------------------------------------------


def _describe(value: Any, secret: bool) -> str:
    if secret:
        return f"a value of type {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_error(
    error: ErrorDetails,
    model: type[BaseModel],
    prefix: tuple[str, ...] = (),
    line_of: Callable[[str], int | None] = lambda key: None,
) -> ConfigError:
    """One pydantic error about ``model`` (at ``prefix`` in the file) as the admin reads it: the
    key (down to the value the rule is about, not into a list or a plain mapping's values) with
    its line, and what the value must be."""
    rest = [str(part) for part in error["loc"]]
    names: list[str] = list(prefix)
    kind: Any = model
    info = None

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(key, message, line_of(key))

    while rest:
        fields = model_of(kind)
        if fields is not None:
            if rest[0] not in fields.model_fields:
                break
            info = fields.model_fields[rest[0]]
            kind = info.annotation
        else:
            types = dict_types(kind)
            if types is None or rest[1:2] == ["[key]"] or not _container(types[1]):
                break
            info = None
            kind = types[1]
        names.append(rest.pop(0))
    key = ".".join(names)
    context = error.get("ctx") or {}
    if error["type"] == "config":
        below = context.get("key")
        return fail(f"{key}.{below}" if key and below else below or key, context["message"])
    if error["type"] == "extra_forbidden":
        known = ", ".join(getattr(model_of(kind), "model_fields", ()))
        return fail(key, f"has unknown key {rest[0]!r} (use {known})")
    if rest[1:2] == ["[key]"]:
        types = dict_types(kind)
        what = (types and must_of([types[0]])) or "a name"
        return fail(key, f"has a bad key {rest[0]!r}: each must be {what}")
    about = KeyInfo.of(info) if info is not None else None
    must = (about.must if about else None) or must_of([kind])
    must = must or "a mapping (indented 'key: value' lines)"
    value = error.get("input")
    if error["type"] == "missing" or (
        not rest and (value is None or (about is not None and about.required and value == ""))
    ):
        return fail(key, f"is required: set it to {must}")
    hint = ""
    if not rest and info is not None and info.annotation is str and isinstance(value, int | float):
        hint = " (put the value in quotes)"
    secret = about is not None and about.secret
    return fail(key, f"must be {must}, got {_describe(value, secret)}{hint}")


def _container(kind: Any) -> bool:
    return model_of(kind) is not None or dict_types(kind) is not None
