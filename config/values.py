"""The value types config keys are made of: strict pydantic types, each with what its values
must be (:class:`Must`), said once for errors and the docs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr
from pydantic_core import PydanticCustomError
from yarl import URL

from bridge.constants import ID_PATTERN
from bridge.identity import TemplateError, is_valid_localpart, validate_template

from .fields import Must, invalid

MIN_SECRET_LENGTH = 16
#: The value of a key marked ``generate=True`` that asks for a fresh random secret.
GENERATE = "generate"


def rule(test: Callable[[Any], bool]) -> AfterValidator:
    """A check beyond the type; what a failing value must be comes from the type's Must."""

    def run(value: Any) -> Any:
        if not test(value):
            raise PydanticCustomError("rule", "does not fit the rule")
        return value

    return AfterValidator(run)


def _is_http_url(value: str) -> bool:
    try:
        url = URL(value)
        return url.scheme in ("http", "https") and bool(url.host) and url.port is not None
    except (ValueError, TypeError):
        return False


def matches(pattern: str, *, any_case: bool = False) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    if any_case:
        return lambda value: compiled.fullmatch(value.lower()) is not None
    return lambda value: compiled.fullmatch(value) is not None


Flag = Annotated[StrictBool, Must("true or false")]
Text = Annotated[StrictStr, Must("a string")]
NonEmpty = Annotated[StrictStr, rule(lambda v: bool(v.strip())), Must("a non-empty string")]
Port = Annotated[StrictInt, Field(gt=0, lt=65536), Must("a port number (1-65535)")]
Positive = Annotated[StrictInt, Field(gt=0), Must("a positive integer")]
Seconds = Annotated[StrictInt, Field(ge=0), Must("a number of seconds (0 or more)")]
HttpUrl = Annotated[StrictStr, rule(_is_http_url), Must("an http(s) URL")]
HttpUrlOrEmpty = Annotated[
    StrictStr, rule(lambda v: v == "" or _is_http_url(v)), Must("an http(s) URL")
]
ServerName = Annotated[
    StrictStr,
    rule(matches(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")),
    Must("the homeserver's server name, e.g. example.com"),
]
PathPrefix = Annotated[
    StrictStr,
    rule(matches(r"(/[A-Za-z0-9._~-]+)+")),
    Must("a path such as /_matrix/provision/v1 (no trailing '/')"),
]
Localpart = Annotated[
    StrictStr,
    rule(is_valid_localpart),
    Must("a localpart (a-z, 0-9, '.', '_', '=', '-', '/')"),
]
Secret = Annotated[
    StrictStr,
    rule(lambda v: len(v.strip()) >= MIN_SECRET_LENGTH),
    Must(f"a secret of at least {MIN_SECRET_LENGTH} characters (or '{GENERATE}')"),
]
EmailOrEmpty = Annotated[
    StrictStr, rule(lambda v: v == "" or matches(r"[^@\s]+@[^@\s]+")(v)), Must("an email address")
]
SmtpSecurity = Annotated[Literal["none", "starttls", "tls"], Must("one of none, starttls, tls")]
PracticeId = Annotated[
    StrictStr,
    rule(matches(ID_PATTERN)),
    Must("a practice id (1-64 of A-Z, a-z, 0-9, '.', '_', '-')"),
]
_MIMETYPE = r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*"
_EXTENSION = r"\.?[a-z0-9][a-z0-9_+-]*"
Bytes = Annotated[StrictInt, Field(gt=0), Must("a positive number of bytes")]
Mimetypes = Annotated[
    list[Annotated[StrictStr, rule(matches(_MIMETYPE, any_case=True))]],
    Must("a list of media types such as [application/x-msdownload]"),
]
Extensions = Annotated[
    list[Annotated[StrictStr, rule(matches(_EXTENSION, any_case=True))]],
    Must("a list of file name endings such as [exe]"),
]


def _database_url(url: str) -> str:
    try:
        scheme = URL(url).scheme
    except (ValueError, TypeError):
        scheme = ""
    if scheme not in ("sqlite", "sqlite3", "postgres", "postgresql"):
        raise invalid(f"unknown database scheme '{scheme}' (use sqlite:<path> or postgres://...)")
    return url


def _pool_sizes(opts: dict[str, Any]) -> dict[str, Any]:
    for name in ("min_size", "max_size"):
        value = opts.get(name)
        if name in opts and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise invalid("must be a positive integer", name)
    if "min_size" in opts and "max_size" in opts and opts["min_size"] > opts["max_size"]:
        raise invalid("must not be larger than max_size", "min_size")
    return opts


def _template(template: str) -> str:
    try:
        validate_template(template)
    except TemplateError as e:
        raise invalid(str(e)) from None
    return template


def _logging(settings: dict[str, Any]) -> dict[str, Any]:
    """The shape dictConfig needs; `run` applies it and reports what only that can find."""
    if settings.get("version") != 1:
        raise invalid("must have 'version: 1'")
    for section in ("formatters", "filters", "handlers", "loggers"):
        value = settings.get(section)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values())
        ):
            raise invalid("must map names to mappings", section)
    if settings.get("root") is not None and not isinstance(settings["root"], dict):
        raise invalid("must be a mapping", "root")
    return settings


DatabaseUrl = Annotated[NonEmpty, AfterValidator(_database_url), Must("a database URL")]
PoolOptions = Annotated[
    dict[StrictStr, Any], AfterValidator(_pool_sizes), Must("a mapping of pool options")
]
Template = Annotated[NonEmpty, AfterValidator(_template), Must("a template")]
Token = Annotated[NonEmpty, Must("a token")]
PlanName = Annotated[
    StrictStr, rule(lambda v: bool(v) and "." not in v), Must("a plan name (without '.')")
]
Features = Annotated[
    dict[StrictStr, StrictBool], Must("a mapping of feature names to true or false")
]
Plans = Annotated[
    dict[PlanName, Features], Field(min_length=1), Must("a mapping of plan names to features")
]
LoggingConfig = Annotated[
    dict[StrictStr, Any], AfterValidator(_logging), Must("a logging dictConfig mapping")
]


def _is_origin(value: str) -> bool:
    """A web origin as browsers send it: ``https://host`` or ``http://host:port``, no path."""
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


Origins = Annotated[
    list[Annotated[StrictStr, rule(_is_origin)]],
    Must(
        "a list of origins such as [https://portal.example.com] (scheme, host and port if not "
        "the default; no path)"
    ),
]
