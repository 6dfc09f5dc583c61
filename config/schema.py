"""The bridge config: every key once, with its type, default, rule and comment.

Code reads values as attributes (``config.homeserver.address``). example-config.yaml is written
from these models (``make example-config``; a test holds the file to them), and the loader
(``config/loader.py``) takes from them what to copy on upgrade, what is required and what is
secret. Adding a key is adding one field here, with its comment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from bridge.identity import MAX_USER_ID_LENGTH, IdentityMapper

from .fields import Section, invalid, key
from .values import (
    Bytes,
    DatabaseUrl,
    EmailOrEmpty,
    Extensions,
    Flag,
    HttpUrl,
    HttpUrlOrEmpty,
    Localpart,
    LoggingConfig,
    Mimetypes,
    NonEmpty,
    Origins,
    PathPrefix,
    Plans,
    PoolOptions,
    Port,
    Positive,
    PracticeId,
    Seconds,
    Secret,
    ServerName,
    SmtpSecurity,
    Template,
    Text,
    Token,
)

if TYPE_CHECKING:
    from .fields import ConfigError
    from .loader import ConfigFile

#: The first lines of example-config.yaml.
HEADER = (
    "practice-bridge configuration.\n"
    "Generate a config with fresh secrets: `practice-bridge generate-config`.\n"
    "Keys follow the mautrix conventions; every key is documented here."
)
PLACEHOLDER_TOKEN = "This value is generated when generating the registration"  # noqa: S105


# -- sections ------------------------------------------------------------------------------------


class Homeserver(Section):
    address: HttpUrl = key(
        "The address the bridge uses to reach Synapse's client-server API.",
        "http://127.0.0.1:8008",
        required=True,
        must="the http(s) URL of the homeserver",
    )
    domain: ServerName = key(
        "The server name (the part after ':' in user ids): Synapse's server_name.",
        "example.com",
        required=True,
    )
    verify_ssl: Flag = key(
        "Whether to verify TLS certificates when talking to the homeserver.", True
    )
    modules: Flag = key(
        "Whether Synapse loads the practice-bridge modules (the modules entries of "
        "`practice-bridge snippet`): start-up stops when they are missing. false: for a "
        "homeserver that cannot load modules; the bridge then enforces the practice rules "
        "after the fact, and the bot must be made a server admin by hand (docs/admin.md).",
        True,
    )


class Appservice(Section):
    address: HttpUrl = key(
        "The address Synapse uses to send transactions to the bridge.",
        "http://127.0.0.1:29340",
        required=True,
    )
    hostname: NonEmpty = key(
        "The interface and port the bridge listens on (appservice and provisioning API).",
        "127.0.0.1",
        must="an interface to listen on, e.g. 127.0.0.1",
    )
    port: Port = key("", 29340)
    database: DatabaseUrl = key(
        "The bridge's database: sqlite:<path> (default) or postgres://user:pass@host/db",
        "sqlite:practice-bridge.db",
    )
    database_opts: PoolOptions = key(
        "Connection pool settings (PostgreSQL only; other asyncpg pool arguments work too).",
        {"min_size": 1, "max_size": 10},
    )
    id: NonEmpty = key(
        "The registration id; must match the registration file loaded by Synapse.",
        "practice-bridge",
    )
    bot_username: Localpart = key("The bridge bot's localpart and display name.", "practicebot")
    bot_displayname: Text = key("", "Practice")
    username_template: Template = key(
        "Localpart template for portal users. Must contain {kind}, {practice} and {id} once "
        "each, separated by '_', '.' or '/'. {kind} is 'staff' or 'client'.",
        "pb_{kind}_{practice}_{id}",
    )
    as_token: Token = key(
        "Tokens shared with Synapse. Written by `practice-bridge generate-registration`.",
        PLACEHOLDER_TOKEN,
        secret=True,
    )
    hs_token: Token = key("", PLACEHOLDER_TOKEN, secret=True)


class Provisioning(Section):
    prefix: PathPrefix = key(
        "The path prefix of the API on the bridge's listener.", "/_matrix/provision/v1"
    )
    shared_secret: Secret = key(
        'The secret of the portal backend (at least 16 characters). "generate" makes a fresh '
        "one when the config is loaded.",
        "generate",
        secret=True,
        was="secret",
        generate=True,
    )
    token_cache_seconds: Seconds = key(
        "How long a verified Matrix access token is trusted before it is checked again.", 60
    )
    cors_origins: Origins = key(
        "Origins of the portal pages that may call this API from a browser (CORS) and embed the "
        "Messenger, e.g. [https://portal.example.com]; none by default. Browsers use the user's "
        "Matrix access token: a request from a browser that carries the shared secret is refused.",
        [],
    )


class Practice(Section):
    plans: Plans = key(
        "Plans and their features. A practice names its plan in PUT /practices/{id}.\n"
        "Features: direct_chat_sharing (share 1:1 chats with team members).",
        {
            "solo": {"direct_chat_sharing": False},
            "plus": {"direct_chat_sharing": True},
            "team": {"direct_chat_sharing": True},
        },
    )
    default_plan: NonEmpty = key(
        "The plan a practice gets when none is given.", "solo", must="a plan name"
    )
    max_text_length: Positive = key(
        "The longest name, email or message accepted through the API, in characters.", 4096
    )

    @model_validator(mode="after")
    def _default_plan_is_a_plan(self) -> Practice:
        if self.default_plan not in self.plans:
            raise invalid(
                f"must name one of practice.plans ({', '.join(self.plans)}), "
                f"got {self.default_plan!r:.60}",
                "default_plan",
            )
        return self


class PracticeAttachments(BaseModel):
    """One practice's attachment rules: each key it has replaces the default one."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    max_size: Bytes | None = None
    blocked_mimetypes: Mimetypes | None = None
    blocked_extensions: Extensions | None = None


class Attachments(Section):
    max_size: Bytes = key(
        "The largest attachment, in bytes (keep it at or under Synapse's max_upload_size, 50M "
        "by default).",
        26214400,
    )
    blocked_mimetypes: Mimetypes = key(
        "Media types refused: the upload's Content-Type, a message's info.mimetype, and what "
        "a file's first bytes show (Windows, Linux and macOS programs, '#!' scripts).",
        "application/x-msdownload application/x-msdos-program application/x-ms-installer "
        "application/x-msi application/vnd.microsoft.portable-executable application/x-dosexec "
        "application/x-executable application/x-elf application/x-mach-binary "
        "application/x-apple-diskimage application/vnd.android.package-archive "
        "application/java-archive application/x-java-archive application/x-sh "
        "application/x-shellscript text/x-shellscript text/x-sh application/x-csh "
        "application/x-bat application/x-msbatch application/x-powershell text/javascript "
        "application/javascript application/x-javascript text/vbscript application/x-vbscript "
        "application/hta text/x-python application/x-python-code text/x-perl application/x-perl "
        "text/x-ruby application/x-php".split(),
    )
    blocked_extensions: Extensions = key(
        "File name endings refused (the upload's filename and a message's filename or body).",
        "exe com scr pif cpl dll msi msp msc bat cmd sh bash zsh csh ksh ps1 psm1 vb vbs vbe js "
        "jse mjs wsf wsh hta jar apk app dmg lnk reg py pyc pl rb php".split(),
    )
    practices: dict[PracticeId, PracticeAttachments] = key(
        "Per-practice rules: practice id -> any of the keys above, which replace the default "
        "ones for that practice. For example:\n"
        "  practices:\n"
        "      sunrise:\n"
        "          max_size: 52428800\n"
        "          blocked_extensions: [exe, msi, bat, cmd, ps1, vbs]",
        {},
        must="a mapping of practice ids to attachment rules",
    )

    def rules_of(self, practice_id: str | None) -> dict[str, Any]:
        """The complete rules of a practice (its own keys over the defaults), or the defaults;
        lists are copies."""
        own = self.practices.get(practice_id) if practice_id is not None else None
        rules: dict[str, Any] = {}
        for name in PracticeAttachments.model_fields:
            value = getattr(own, name, None) if own is not None else None
            value = getattr(self, name) if value is None else value
            rules[name] = list(value) if isinstance(value, list) else value
        return rules


class Smtp(Section):
    hostname: Text = key(
        'The mail server and its port; "" turns email off.',
        "",
        must='a host name, or "" to turn email off',
    )
    port: Port = key("", 587)
    security: SmtpSecurity = key("none, starttls or tls", "starttls")
    username: Text = key('The login at the mail server ("" for none).', "")
    password: Text = key("", "", secret=True)
    from_address: EmailOrEmpty = key("The sender of notification emails.", "practice@example.com")


class Notifications(Section):
    delay_seconds: Seconds = key(
        "Seconds a message must stay unread before an email goes out.", 300
    )
    portal_url: HttpUrlOrEmpty = key(
        "The portal link put in emails.", "https://portal.example.com"
    )
    smtp: Smtp = key("How email is sent.")


class Metrics(Section):
    enabled: Flag = key(
        "Serve Prometheus metrics at http://<listen_address>:<listen_port>/metrics "
        "(docs/admin.md#metrics-and-alerts). Keep the port private: it needs no token.",
        False,
    )
    listen_address: NonEmpty = key("", "127.0.0.1", must="an interface to listen on")
    listen_port: Port = key("", 8000)


_LOGGING = {
    "version": 1,
    "formatters": {
        "normal": {"format": "[%(asctime)s] [%(levelname)s@%(name)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "normal"}},
    "loggers": {"mau": {"level": "INFO"}, "aiohttp": {"level": "WARNING"}},
    "root": {"level": "INFO", "handlers": ["console"]},
}


class Config(Section):
    """The whole config, as the bridge reads it: ``load_config`` makes one from a file.

    Indexing with a dotted key (``"a.b"``) reads and writes too, for the loader and its tests;
    the code uses attributes.
    """

    homeserver: Homeserver = key("The homeserver the bridge works with.")
    appservice: Appservice = key(
        "The application service: how Synapse reaches the bridge, and its own storage."
    )
    provisioning: Provisioning = key(
        "The provisioning API used by the portal backend and frontends."
    )
    practice: Practice = key("Product rules.")
    attachments: Attachments = key(
        "Attachments: what portal users may upload and send in chats. Synapse enforces it "
        "through the media module (practice_bridge_synapse.media), which reads it from "
        "homeserver.yaml: after a change, update the module's entry there (docs/admin.md) and "
        "restart Synapse (`practice-bridge local` does this itself)."
    )
    notifications: Notifications = key("Email notifications. Off while smtp.hostname is empty.")
    metrics: Metrics = key("Prometheus metrics, for monitoring.")
    logging: LoggingConfig = key(
        "Python logging configuration. See https://docs.python.org/3/library/logging.config.html",
        _LOGGING,
    )

    _file: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _user_ids_fit(self) -> Config:
        mapper = self.identity_mapper()
        if mapper.max_user_id_length() > MAX_USER_ID_LENGTH:
            raise invalid(
                f"with homeserver.domain '{self.homeserver.domain}', user ids could reach "
                f"{mapper.max_user_id_length()} characters, over Matrix's limit of "
                f"{MAX_USER_ID_LENGTH}; use a shorter template",
                "appservice.username_template",
            )
        if mapper.is_portal_localpart(self.appservice.bot_username):
            raise invalid(
                "must not have the shape of appservice.username_template (portal users' ids)",
                "appservice.bot_username",
            )
        return self

    # -- the file behind it ---------------------------------------------------------------------

    @property
    def file(self) -> ConfigFile:
        if self._file is None:
            raise RuntimeError("this config was not loaded from a file")
        return self._file

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def dropped_keys(self) -> list[str]:
        """Keys of the admin's file that this version does not know (dropped by the upgrade)."""
        return self.file.dropped_keys

    @property
    def _data(self) -> Any:
        """The YAML document (comments and all) that ``save`` writes."""
        return self.file._data

    def save(self) -> None:
        """Write the config atomically, keeping the file's permissions; ConfigError if not."""
        self.file.save()
        self.bind(self.file._data)

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError about ``key``, with its line in the file."""
        return self.file.error(key, message)

    def __getitem__(self, key: str) -> Any:
        node: Any = self
        for part in key.split("."):
            node = getattr(node, part) if isinstance(node, BaseModel) else node[part]
        return node

    def __setitem__(self, key: str, value: Any) -> None:
        *parents, name = key.split(".")
        node: Any = self
        for part in parents:
            node = getattr(node, part)
        setattr(node, name, value)

    # -- derived values -------------------------------------------------------------------------

    def identity_mapper(self) -> IdentityMapper:
        """Portal identities <-> user ids, as this config names them."""
        return IdentityMapper(
            self.appservice.username_template,
            self.homeserver.domain,
            self.appservice.bot_username,
        )

    @property
    def bot_mxid(self) -> str:
        return f"@{self.appservice.bot_username}:{self.homeserver.domain}"

    @property
    def has_tokens(self) -> bool:
        return PLACEHOLDER_TOKEN not in (self.appservice.as_token, self.appservice.hs_token)

    def require_tokens(self) -> None:
        """Running needs the tokens that `generate-registration` writes."""
        for name in ("as_token", "hs_token"):
            if getattr(self.appservice, name) == PLACEHOLDER_TOKEN:
                raise self.error(
                    f"appservice.{name}",
                    "not generated yet; run `practice-bridge generate-registration` first",
                )
