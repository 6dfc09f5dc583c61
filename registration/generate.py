"""The appservice registration file and the homeserver.yaml snippet that loads it.

The registration claims an exclusive user namespace built from the username template plus the
bot, asks for ephemeral events (read receipts) and turns rate limiting off for the bridge. Fresh
tokens are written back into the bridge config so the two always match.
"""

from __future__ import annotations

import copy
import hmac
import io
import os
import re
import secrets
from typing import Any

from ruamel.yaml import YAML

from bridge.identity import IdentityMapper, escape
from bridge.privacy import SYNAPSE_SETTINGS as PRIVACY_SETTINGS
from config import Config

from .homeserver import LOGIN_RATE_LIMITS


def generate_registration(config: Config, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the registration to ``path`` with fresh tokens and store the tokens in the config."""
    as_token = secrets.token_urlsafe(48)
    hs_token = secrets.token_urlsafe(48)
    mapper = config.identity_mapper()
    registration = {
        "id": config.appservice.id,
        "url": config.appservice.address,
        "as_token": as_token,
        "hs_token": hs_token,
        "sender_localpart": config.appservice.bot_username,
        "rate_limited": False,
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
        "namespaces": {
            "users": [
                {"regex": mapper.namespace_regex(), "exclusive": True},
                # Anchored: Synapse tests with re.match, which only anchors the start.
                {"regex": re.escape(config.bot_mxid) + "$", "exclusive": True},
            ],
            "aliases": [],
            "rooms": [],
        },
    }
    # Both files get the new tokens or neither does: the registration is staged first and
    # only put in place once the config holds the tokens.
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        YAML().dump(registration, f)
    os.chmod(tmp, 0o600)
    try:
        config.appservice.as_token = as_token
        config.appservice.hs_token = hs_token
        config.save()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return registration


def _reports_to(registration_path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Where the modules read the appservice's address and hs_token to report refusals: the
    registration file Synapse loads (none: no reports)."""
    return {"registration": os.path.abspath(registration_path)} if registration_path else {}


def module_entry(
    config: Config,
    *,
    promote_bot_to_admin: bool = True,
    registration_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The rules module (practice_bridge_synapse.rules)."""
    mapper = config.identity_mapper()
    client_regex = mapper.namespace_regex().replace("(staff|client)", "client")
    return {
        "module": "practice_bridge_synapse.rules.PracticeRules",
        "config": {
            "bot_user_id": config.bot_mxid,
            "user_regex": mapper.namespace_regex(),
            "client_regex": client_regex,
            "promote_bot_to_admin": promote_bot_to_admin,
            **_reports_to(registration_path),
        },
    }


# A field of a portal user id: what bridge.identity.escape makes of an id.
_FIELD = "[a-z0-9=-]+"


def practice_regex(mapper: IdentityMapper) -> str:
    """Portal user ids with their practice (as escaped in the id) in the group ``practice``."""
    pattern = re.escape(mapper.template)
    pattern = pattern.replace(re.escape("{kind}"), "(?P<kind>staff|client)")
    pattern = pattern.replace(re.escape("{practice}"), f"(?P<practice>{_FIELD})")
    pattern = pattern.replace(re.escape("{id}"), _FIELD)
    return f"@{pattern}:{re.escape(mapper.domain)}$"


def media_module_entry(
    config: Config, *, registration_path: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The media module (practice_bridge_synapse.media): the attachment policy of ``attachments``,
    each practice's rules complete (its own keys over the defaults), keyed by the practice as it
    appears in user ids."""
    mapper = config.identity_mapper()
    attachments = config.attachments
    default = attachments.rules_of(None)
    practices = {escape(pid): attachments.rules_of(pid) for pid in attachments.practices}
    return {
        "module": "practice_bridge_synapse.media.PracticeMedia",
        "config": {
            "bot_user_id": config.bot_mxid,
            "practice_regex": practice_regex(mapper),
            "attachments": {"default": default, "practices": practices},
            **_reports_to(registration_path),
        },
    }


def logins_module_entry(config: Config) -> dict[str, Any]:
    """The logins module (practice_bridge_synapse.logins): clients sign in only through the
    bridge, never with a password or single sign-on, and no app sign-in takes a device the
    bridge made."""
    user_regex = config.identity_mapper().namespace_regex()
    return {
        "module": "practice_bridge_synapse.logins.PracticeLogins",
        "config": {
            "user_regex": user_regex,
            "client_regex": user_regex.replace("(staff|client)", "client"),
        },
    }


def module_entries(
    config: Config,
    *,
    promote_bot_to_admin: bool = True,
    registration_path: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Every module Synapse loads for the bridge: the rules, the media policy, then the logins;
    with the registration's path, the first two report refusals to the bridge."""
    return [
        module_entry(
            config,
            promote_bot_to_admin=promote_bot_to_admin,
            registration_path=registration_path,
        ),
        media_module_entry(config, registration_path=registration_path),
        logins_module_entry(config),
    ]


def snippet_entries(config: Config, registration_path: str | os.PathLike[str]) -> dict[str, Any]:
    """What homeserver.yaml needs for the bridge: the registration's path (where Synapse reads
    it) in ``app_service_config_files``, the modules in ``modules``, the login rate limits,
    and the settings that keep profiles private (``bridge.privacy``)."""
    return {
        "app_service_config_files": [os.path.abspath(registration_path)],
        "modules": module_entries(config, registration_path=registration_path),
        **LOGIN_RATE_LIMITS,
        **copy.deepcopy(PRIVACY_SETTINGS),
    }


SNIPPET_HEADER = """\
# practice-bridge: merge these lines into homeserver.yaml (docs/admin.md).
# Add the path to your existing app_service_config_files list and the three entries to your
# existing modules list: a second `modules:` or `app_service_config_files:` key would make
# YAML drop the first one, and with it another bridge or module. `practice-bridge snippet
# --merge homeserver.yaml` prints homeserver.yaml with these merged in, for you to review.
# The profile settings below show a user's name only to signed-in users who share a room
# with them (docs/admin.md#privacy-of-the-directory); the bridge checks them at start.
# The modules run in Synapse's Python environment: pip install the practice-bridge-synapse
# package there (the synapse-modules folder of practice-bridge).
"""


def homeserver_snippet(config: Config, registration_path: str | os.PathLike[str]) -> str:
    """The lines an admin merges into homeserver.yaml, as YAML text."""
    out = io.StringIO()
    out.write(SNIPPET_HEADER)
    YAML().dump(snippet_entries(config, registration_path), out)
    return out.getvalue()


def read_registration(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The registration file as written by :func:`generate_registration`."""
    with open(path) as f:
        data = YAML(typ="safe").load(f)
    if not isinstance(data, dict):
        raise ValueError("is not a registration (a YAML mapping)")
    return data


def registration_mismatches(config: Config, registration: dict[str, Any]) -> list[str]:
    """Where the registration file and the config disagree (empty: they belong together)."""
    appservice = config.appservice
    expected = {
        "id": appservice.id,
        "url": appservice.address,
        "sender_localpart": appservice.bot_username,
    }
    problems = [
        f"its {name} is {registration.get(name)!r} but config.yaml says {value!r}"
        for name, value in expected.items()
        if registration.get(name) != value
    ]
    for name in ("as_token", "hs_token"):
        theirs = registration.get(name)
        if not isinstance(theirs, str) or not hmac.compare_digest(
            theirs.encode(), getattr(appservice, name).encode()
        ):
            problems.append(f"its {name} is not the one in config.yaml")
    return problems
