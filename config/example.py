"""example-config.yaml, written from the schema: each key with its comment and example value.

``python -m config.example`` (``make example-config``) writes the file; a test fails while the
checked-in file differs from what this makes.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML

from .fields import KeyInfo, schema_keys, section_of
from .loader import EXAMPLE_PATH
from .schema import HEADER, Config

WIDTH = 96
INDENT = 4
_PLAIN = re.compile(r"[A-Za-z0-9/_.@-][^,\[\]{}#'\"]*")


def example_text() -> str:
    required = [
        key
        for key, info in schema_keys(Config)
        if section_of(info) is None and KeyInfo.of(info).required
    ]
    keys = f"{', '.join(required[:-1])} and {required[-1]}" if len(required) > 1 else required[0]
    header = f"{HEADER}\n{keys} have no default: a config does not start until they are set."
    lines = _comment(header, 0)
    _section(Config, 0, lines)
    return "\n".join(lines) + "\n"


def _section(model: type[BaseModel], indent: int, lines: list[str]) -> None:
    for name, info in model.model_fields.items():
        about = KeyInfo.of(info)
        section = section_of(info)
        if indent == 0:
            lines.append("")  # a blank line before each section
        lines += _comment(about.comment, indent)
        if section is not None:
            lines.append(f"{' ' * indent}{name}:")
            _section(section, indent + INDENT, lines)
        elif about.required:
            # Left empty: a config fails until the admin sets it.
            lines += _comment(f"Required, no default: set it, e.g. {about.example}", indent)
            lines += _entry(name, "", indent)
        else:
            lines += _entry(name, about.example, indent)


def _entry(name: str, value: Any, indent: int) -> list[str]:
    start = f"{' ' * indent}{name}:"
    if isinstance(value, dict) and value:
        lines = [start]
        for key, inner in value.items():
            lines += _entry(key, inner, indent + INDENT)
        return lines
    if isinstance(value, list) and value:
        return _flow(f"{start} [", [_scalar(item) for item in value], indent + INDENT)
    return [f"{start} {_scalar(value)}"]


def _flow(start: str, items: list[str], indent: int) -> list[str]:
    """A flow sequence wrapped to the width, continuation lines indented."""
    lines: list[str] = []
    line = start
    for i, item in enumerate(items):
        text = item + ("]" if i == len(items) - 1 else ",")
        if not line.endswith("[") and len(line) + 1 + len(text) > WIDTH:
            lines.append(line)
            line = " " * indent + text
        else:
            line += text if line.endswith("[") else " " + text
    return [*lines, line]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    if _PLAIN.fullmatch(text) and ": " not in text and text == text.strip():
        if YAML(typ="safe", pure=True).load(text) == text:
            return text
    return json.dumps(text)


def _comment(text: str, indent: int) -> list[str]:
    """``text`` as comment lines wrapped to the width; lines that start with a space are kept
    as they are (examples)."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        if paragraph.startswith(" "):
            lines.append(paragraph)
        else:
            lines += textwrap.wrap(paragraph, WIDTH - indent - 2, break_on_hyphens=False)
    return [f"{' ' * indent}# {line}".rstrip() for line in lines]


def main() -> None:
    text = example_text()
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if EXAMPLE_PATH.read_text() == text else 1)
    EXAMPLE_PATH.resolve().write_text(text)


if __name__ == "__main__":
    main()
