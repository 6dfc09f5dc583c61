"""Generating the appservice registration and the homeserver.yaml snippet."""

from .generate import (
    generate_registration,
    homeserver_snippet,
    media_module_entry,
    module_entries,
    module_entry,
    read_registration,
    registration_mismatches,
    snippet_entries,
)

__all__ = [
    "generate_registration",
    "homeserver_snippet",
    "media_module_entry",
    "module_entries",
    "module_entry",
    "read_registration",
    "registration_mismatches",
    "snippet_entries",
]
