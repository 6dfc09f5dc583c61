"""The running Synapse compared with the bridge's config: what ``practice-bridge check`` prints
and what start-up refuses.

Problems (the bridge cannot work against this Synapse, start-up stops): Synapse not answering
at ``homeserver.address``; the appservice token unknown to it (the registration not loaded, or
an older copy); another server name than ``homeserver.domain``; another bot than
``appservice.bot_username``; a rules or media module missing (unless ``homeserver.modules`` is
false) or configured for another bot.

Leaks (logged as errors, start-up goes on; ``check`` exits with 1): profiles shown to anonymous
callers or to users who share no room with their owner (``appservice.privacy``).

Recommendations (logged as warnings; ``check`` exits with 2): registration open, URL previews
on, presence on, federation served at ``homeserver.address``. What Synapse does not show over
its client API (``federation_domain_whitelist``, a federation listener on another port, rate
limits) is not checked: docs/admin.md lists those settings.

Every finding is one line that names the setting to change. Only Synapse's client API is used,
as the bot (the appservice token) or anonymously.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from appservice.privacy import profile_leaks
from config import Config
from practice_bridge_synapse.names import MEDIA_PROBE_PATH, MODULE_NAME, PROBE_PATH

_TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass(frozen=True)
class Finding:
    problem: bool  # True: the bridge cannot run against this Synapse; False: a recommendation
    text: str
    leak: bool = False  # Synapse gives away what it must not: an error, but start-up goes on

    @property
    def error(self) -> bool:
        return self.problem or self.leak

    def __str__(self) -> str:
        return f"{'error' if self.error else 'warning'}: {self.text}"


class SynapseMismatch(Exception):
    """Start-up stops: the problems ``check_synapse`` found, one line each."""

    def __init__(self, problems: list[Finding]) -> None:
        super().__init__("; ".join(f.text for f in problems))
        self.problems = problems


def _problem(text: str) -> Finding:
    return Finding(True, text)


def _advice(text: str) -> Finding:
    return Finding(False, text)


class _Synapse:
    def __init__(self, session: aiohttp.ClientSession, config: Config) -> None:
        self.session = session
        self.base = str(config.homeserver.address).rstrip("/")
        self.token = config.appservice.as_token
        self.ssl = bool(config.homeserver.verify_ssl)  # False: no certificate check

    async def call(
        self, method: str, path: str, *, bot: bool = True, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if bot else {}
        async with self.session.request(
            method, self.base + path, headers=headers, json=body, ssl=self.ssl
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, None


async def check_synapse(config: Config) -> list[Finding]:
    """Every difference between the running Synapse and what ``config`` expects."""
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        synapse = _Synapse(session, config)
        try:
            return await _check(synapse, config)
        except (aiohttp.ClientError, TimeoutError) as e:
            reason = str(e) or type(e).__name__
            return [
                _problem(
                    f"Synapse does not answer at homeserver.address ({synapse.base}): {reason}"
                )
            ]


async def _check(synapse: _Synapse, config: Config) -> list[Finding]:
    status, me = await synapse.call("GET", "/_matrix/client/v3/account/whoami")
    if status == 401:
        return [
            _problem(
                "Synapse does not know the bridge's appservice token: add the registration to "
                "app_service_config_files (practice-bridge snippet), copy it again if Synapse "
                "reads a copy, and restart Synapse"
            )
        ]
    if status != 200 or not isinstance(me, dict) or not isinstance(me.get("user_id"), str):
        return [_problem(f"Synapse answered whoami with {status}: is homeserver.address Synapse?")]
    findings = _identity(config, me["user_id"])
    if any(f.problem for f in findings):
        return findings  # The probes below would only repeat it.
    findings += await _modules(synapse, config)
    leaks = await profile_leaks(
        synapse.session, synapse.base, config.bot_mxid, synapse.token, ssl=synapse.ssl
    )
    findings += [Finding(False, leak, leak=True) for leak in leaks]
    findings += await _hardening(synapse, config)
    return findings


def _identity(config: Config, user_id: str) -> list[Finding]:
    localpart, _, server_name = user_id.removeprefix("@").partition(":")
    findings = []
    if server_name != config.homeserver.domain:
        findings.append(
            _problem(
                f"Synapse's server name is {server_name}, but homeserver.domain is "
                f"{config.homeserver.domain}"
            )
        )
    if localpart != config.appservice.bot_username:
        findings.append(
            _problem(
                f"Synapse knows the appservice's bot as {user_id}, but appservice.bot_username "
                f"is {config.appservice.bot_username}: Synapse loaded another registration "
                "(practice-bridge snippet prints this config's)"
            )
        )
    return findings


async def _modules(synapse: _Synapse, config: Config) -> list[Finding]:
    findings = []
    for name, path, entry in (
        ("rules", PROBE_PATH, "practice_bridge_synapse.rules.PracticeRules"),
        ("media", MEDIA_PROBE_PATH, "practice_bridge_synapse.media.PracticeMedia"),
    ):
        status, answer = await synapse.call("GET", path)
        loaded = status == 200 and isinstance(answer, dict) and answer.get("module") == MODULE_NAME
        if not loaded:
            if config.homeserver.modules:
                findings.append(
                    _problem(
                        f"the {name} module is not loaded in Synapse: add {entry} to its modules "
                        "(practice-bridge snippet), install synapse-modules into Synapse's "
                        "environment, restart Synapse; or set homeserver.modules: false"
                    )
                )
            continue
        assert isinstance(answer, dict)
        if answer.get("bot_user_id") != config.bot_mxid:
            findings.append(
                _problem(
                    f"the {name} module is configured for the bot {answer.get('bot_user_id')}, "
                    f"not {config.bot_mxid}: merge practice-bridge snippet's modules again"
                )
            )
    return findings


async def _hardening(synapse: _Synapse, config: Config) -> list[Finding]:
    findings = []
    status, _ = await synapse.call(
        "GET", "/_matrix/client/v3/register/available?username=practicebridgecheck", bot=False
    )
    if status != 403:
        findings.append(
            _advice("Synapse lets anyone register an account: set enable_registration: false")
        )
    preview = "/_matrix/client/v1/media/preview_url?url=" + quote("http://127.0.0.1:1/")
    status, answer = await synapse.call("GET", preview)
    if not (status in (400, 404) and _errcode(answer) == "M_UNRECOGNIZED"):
        findings.append(
            _advice(
                "Synapse fetches URL previews, which send links from chats to other servers: "
                "set url_preview_enabled: false"
            )
        )
    bot = quote(config.bot_mxid, safe="")
    await synapse.call(
        "PUT", f"/_matrix/client/v3/presence/{bot}/status", body={"presence": "online"}
    )
    status, answer = await synapse.call("GET", f"/_matrix/client/v3/presence/{bot}/status")
    if isinstance(answer, dict) and answer.get("presence") == "online":
        findings.append(
            _advice(
                "Synapse shares presence (who is online) between users: set "
                "presence: {enabled: false}"
            )
        )
        await synapse.call(
            "PUT", f"/_matrix/client/v3/presence/{bot}/status", body={"presence": "offline"}
        )
    status, _ = await synapse.call("GET", "/_matrix/federation/v1/version", bot=False)
    if status == 200:
        findings.append(
            _advice(
                f"Synapse serves federation at {synapse.base}: practice rooms can reach other "
                "servers; remove 'federation' from the listener's resources and set "
                "federation_domain_whitelist: []"
            )
        )
    return findings


def _errcode(answer: Any) -> str | None:
    return answer.get("errcode") if isinstance(answer, dict) else None
