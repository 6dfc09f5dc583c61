"""Attachments inside Synapse: the practice's attachment policy, and practice-only downloads.

Uploads and downloads go straight to Synapse's media repository, never through the bridge, so
this module enforces both there. Runs on Twisted like the rules module: no asyncio libraries, no
blocking I/O on the reactor, no bridge imports. Loaded next to the rules module through
homeserver.yaml (``practice-bridge generate-registration`` prints both entries)::

    modules:
      - module: practice_bridge_synapse.media.PracticeMedia
        config:
          bot_user_id: "@practicebot:example.com"
          practice_regex: "@pb_(?P<kind>staff|client)_(?P<practice>[a-z0-9=-]+)_...$"
          attachments:
            default: {max_size: 26214400, blocked_mimetypes: [...], blocked_extensions: [...]}
            practices:
              # keyed by the practice as it appears in user ids
              sunrise: {max_size: 5242880, blocked_mimetypes: [...], blocked_extensions: [...]}
          registration: /etc/synapse/practice-bridge-registration.yaml

Who it applies to: portal users, whose user id names their practice (``practice_regex``). The
bot, other local users and remote media pass untouched.

**Uploads** (``POST /_matrix/media/v3/upload``, ``PUT /_matrix/media/v3/upload/{server}/{id}``)
are refused before anything is stored when the file is larger than the practice's
``max_size`` (``413 ORG.PRACTICEBRIDGE.ATTACHMENT_TOO_LARGE`` with ``max_size``), or when its
``Content-Type``, the extension of its ``filename``, or what its first bytes show (a Windows,
Linux or macOS program, or a ``#!`` script) is blocked (``403
ORG.PRACTICEBRIDGE.ATTACHMENT_TYPE_BLOCKED`` with ``blocked``). The size is also refused through
Synapse's own ``is_user_allowed_to_upload_media_of_size`` callback, and
``GET /_matrix/client/v1/media/config`` answers a portal user with their practice's policy.

**Media messages** (``m.file``, ``m.image``, ``m.audio``, ``m.video``, stickers, and edits
carrying one) from portal users are checked again before they are stored: the shown file name,
the declared ``info.mimetype`` and ``info.size``, and the stored upload they point to (its type,
name and length, and that it was uploaded in the sender's practice). So a file outside the
policy never reaches a room, even one uploaded before the policy changed.

**Downloads**: media uploaded by a portal user is served only to users of the same practice,
the bot and server admins, through the authenticated ``/_matrix/client/v1/media/download`` and
``/thumbnail``; anyone else gets Synapse's own ``404 M_NOT_FOUND``, as if it did not exist. The
unauthenticated legacy routes (``/_matrix/media/*/download``, ``/thumbnail``) and federation's
media routes never serve it, whatever ``enable_authenticated_media`` says.

**Profiles**: names and pictures come from the practice directory, so a portal user's own
session writes no profile field (``PUT``/``DELETE /_matrix/client/*/profile/{user}/{field}``:
``403 ORG.PRACTICEBRIDGE.PROFILE_FROM_DIRECTORY``, reported to the bridge for its audit log as
the rules module reports its refusals). The bridge, through the appservice, and admins pass.
Synapse has no module callback before a profile change; the gate below is the one place a
module sees it.

How the downloads (and profile writes) are guarded: Synapse's client API is one leaf resource
at ``/_matrix/client``, so a module resource registered below it
(``/_matrix/client/v1/media/download``) is never reached. This module registers a resource at
``/_matrix`` instead; when Synapse builds its resource tree it hands that resource every child
it already built for ``/_matrix`` (``client``, ``media``, ``federation``, ...), and the resource
puts a gate in front of each: the gate checks the routes above and passes every request,
checked or not, to Synapse's own resource.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Literal
from urllib.parse import unquote

from synapse.http.server import UnrecognizedRequestResource, respond_with_json
from synapse.module_api import NOT_SPAM, ModuleApi, run_in_background
from synapse.module_api.errors import SynapseError
from twisted.web.resource import IResource, Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET, Request

from .content import MEDIA_MSGTYPES, msgtype_of
from .errors import Codes
from .metrics import refused
from .names import MEDIA_PROBE_PATH, MODULE_NAME
from .policy import MEMBERSHIP_REFUSALS
from .probe import Probe
from .report import RefusalReporter

logger = logging.getLogger("practice.synapse_media")

_CACHE_MEDIA = 10_000
_SNIFF_BYTES = 1024
_MIMETYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_EXTENSION_RE = re.compile(r"\.?[a-z0-9][a-z0-9_+-]*")

# What a file's first bytes show, as the media type it is blocked under.
_WINDOWS_PROGRAM = "application/x-msdownload"
_LINUX_PROGRAM = "application/x-executable"
_MACOS_PROGRAM = "application/x-mach-binary"
_SCRIPT = "application/x-sh"
_MACHO_MAGIC = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")

# Routes, matched against the raw request path.
_CLIENT_READ = re.compile(
    rb"^/_matrix/client/v1/media/(?:download|thumbnail)/(?P<server>[^/]*)/(?P<media>[^/]*)"
)
_LEGACY_READ = re.compile(
    rb"^/_matrix/media/(?:r0|v3|v1)/(?:download|thumbnail)/(?P<server>[^/]*)/(?P<media>[^/]*)"
)
_FEDERATION_READ = re.compile(
    rb"^/_matrix/federation/v1/media/(?:download|thumbnail)/(?P<media>[^/]*)$"
)
_UPLOAD = re.compile(rb"^/_matrix/media/(?:r0|v3|v1)/upload(?:/[^/]*/[^/]*)?$")
# Writing a profile field (displayname, avatar_url, custom fields), stable or unstable.
_PROFILE_WRITE = re.compile(rb"^/_matrix/client/(?:r0|v3|unstable/[^/]+)/profile/[^/]+/[^/]+$")


class ModuleConfigError(Exception):
    pass


class AttachmentRefused(SynapseError):
    """A refused upload or media message: errcode, a sentence a client can show, fields."""

    def __init__(self, errcode: str, message: str, http_status: int, **fields: Any):
        super().__init__(http_status, message, str(errcode), fields)
        refused(str(errcode))


def human_size(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{round(n / size, 1):g} {unit}"
    return f"{n} bytes"


def too_large(max_size: int) -> AttachmentRefused:
    return AttachmentRefused(
        Codes.ATTACHMENT_TOO_LARGE,
        f"This file is too large: the practice accepts attachments of at most "
        f"{human_size(max_size)}.",
        413,
        max_size=max_size,
    )


def type_blocked(blocked: str) -> AttachmentRefused:
    kind = f".{blocked} files" if "/" not in blocked else f"Files of type {blocked}"
    return AttachmentRefused(
        Codes.ATTACHMENT_TYPE_BLOCKED,
        f"{kind} cannot be sent in this practice's chats: programs and scripts are blocked.",
        403,
        blocked=blocked,
    )


def foreign_attachment() -> AttachmentRefused:
    return AttachmentRefused(
        Codes.FORBIDDEN, "This attachment cannot be sent here; upload the file again.", 403
    )


def normalize_mimetype(value: Any) -> str | None:
    """``Text/Plain; charset=utf-8`` -> ``text/plain``; None when there is none."""
    if not isinstance(value, str):
        return None
    mimetype = value.split(";", 1)[0].strip().lower()
    return mimetype or None


def extension_of(name: Any) -> str | None:
    """The last extension of a file name, lower case, without the dot (``a.PDF.exe`` -> ``exe``).

    Trailing dots and spaces are dropped first, as Windows does when it opens ``setup.exe.``."""
    if not isinstance(name, str):
        return None
    name = name.strip().rstrip(". ").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    if "." not in name:
        return None
    extension = name.rsplit(".", 1)[1].strip().lower()
    return extension or None


def sniff(head: bytes) -> str | None:
    """The blocked media type a file's first bytes show: a program or a ``#!`` script."""
    if head.startswith(b"\x7fELF"):
        return _LINUX_PROGRAM
    if head[:4] in _MACHO_MAGIC:
        return _MACOS_PROGRAM
    if head.startswith(b"#!"):
        return _SCRIPT
    if head.startswith(b"MZ") and len(head) >= 0x40:
        offset = int.from_bytes(head[0x3C:0x40], "little")
        if head[offset : offset + 4] == b"PE\0\0":
            return _WINDOWS_PROGRAM
    return None


@dataclass(frozen=True)
class AttachmentPolicy:
    max_size: int
    blocked_mimetypes: frozenset[str]
    blocked_extensions: frozenset[str]  # lower case, without the dot

    @classmethod
    def from_config(cls, raw: Any, where: str) -> AttachmentPolicy:
        if not isinstance(raw, Mapping):
            raise ModuleConfigError(f"practice-bridge media module: '{where}' must be a mapping")
        size = raw.get("max_size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ModuleConfigError(
                f"practice-bridge media module: '{where}.max_size' must be a positive integer"
            )
        mimetypes = _strings(raw.get("blocked_mimetypes"), f"{where}.blocked_mimetypes")
        extensions = _strings(raw.get("blocked_extensions"), f"{where}.blocked_extensions")
        for mimetype in mimetypes:
            if not _MIMETYPE_RE.fullmatch(mimetype.lower()):
                raise ModuleConfigError(
                    f"practice-bridge media module: '{where}.blocked_mimetypes': {mimetype!r}"
                )
        for extension in extensions:
            if not _EXTENSION_RE.fullmatch(extension.lower()):
                raise ModuleConfigError(
                    f"practice-bridge media module: '{where}.blocked_extensions': {extension!r}"
                )
        return cls(
            size,
            frozenset(m.lower() for m in mimetypes),
            frozenset(e.lower().lstrip(".") for e in extensions),
        )

    def check_type(self, mimetype: Any, name: Any) -> None:
        """Refuse a blocked media type or file name extension."""
        normalized = normalize_mimetype(mimetype)
        if normalized is not None and normalized in self.blocked_mimetypes:
            raise type_blocked(normalized)
        extension = extension_of(name)
        if extension is not None and extension in self.blocked_extensions:
            raise type_blocked(extension)

    def check_size(self, size: Any) -> None:
        if isinstance(size, int) and not isinstance(size, bool) and size > self.max_size:
            raise too_large(self.max_size)

    def media_config(self) -> dict[str, Any]:
        """What ``GET /_matrix/client/v1/media/config`` tells the user."""
        return {
            "m.upload.size": self.max_size,
            "org.practicebridge.blocked_mimetypes": sorted(self.blocked_mimetypes),
            "org.practicebridge.blocked_extensions": sorted(self.blocked_extensions),
        }


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ModuleConfigError(f"practice-bridge media module: '{where}' must list strings")
    return list(value)


@dataclass(frozen=True)
class StoredMedia:
    """A row of Synapse's ``local_media_repository``."""

    uploader: str | None
    media_type: str | None
    length: int | None
    upload_name: str | None


def _select_media(txn: Any, media_id: str) -> StoredMedia | None:
    txn.execute(
        "SELECT user_id, media_type, media_length, upload_name FROM local_media_repository"
        " WHERE media_id = ?",
        (media_id,),
    )
    row = txn.fetchone()
    return StoredMedia(*row) if row else None


def _read_head(content: IO[bytes]) -> bytes:
    """The first bytes of a received upload (run in a thread: large uploads are temp files)."""
    position = content.tell()
    try:
        content.seek(0)
        return content.read(_SNIFF_BYTES)
    finally:
        content.seek(position)


Check = Callable[[Request], Awaitable[SynapseError | None]]


class PracticeMedia:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        self._api = api
        self._bot: str = config["bot_user_id"]
        self._practice_re = re.compile(config["practice_regex"])
        attachments = config["attachments"]
        self._default = AttachmentPolicy.from_config(attachments["default"], "default")
        self._practices = {
            field: AttachmentPolicy.from_config(raw, f"practices.{field}")
            for field, raw in (attachments.get("practices") or {}).items()
        }
        self._media: OrderedDict[str, StoredMedia] = OrderedDict()
        self._reporter = RefusalReporter.from_config(api, config)
        api.register_media_repository_callbacks(
            is_user_allowed_to_upload_media_of_size=self.is_user_allowed_to_upload_media_of_size,
            get_media_config_for_user=self.get_media_config_for_user,
        )
        api.register_spam_checker_callbacks(check_event_for_spam=self.check_event_for_spam)
        api.register_web_resource(
            "/_matrix",
            _MatrixRoot(
                {
                    b"client": self._route_client,
                    b"media": self._route_media,
                    b"federation": self._route_federation,
                }
            ),
        )
        answer = {"module": MODULE_NAME, "bot_user_id": self._bot}
        api.register_web_resource(
            MEDIA_PROBE_PATH, Probe(api, self._bot, answer, on_bot=lambda: None)
        )
        logger.info(
            "practice-bridge media module loaded: attachment policy for %d practice(s) of "
            "their own, downloads within the practice",
            len(self._practices),
        )

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        for key in ("bot_user_id", "practice_regex"):
            if not isinstance(config.get(key), str) or not config[key]:
                raise ModuleConfigError(f"practice-bridge media module: '{key}' is required")
        try:
            practice_re = re.compile(config["practice_regex"])
        except re.error as e:
            raise ModuleConfigError(
                f"practice-bridge media module: 'practice_regex': {e}"
            ) from None
        if "practice" not in practice_re.groupindex:
            raise ModuleConfigError(
                "practice-bridge media module: 'practice_regex' needs a group named 'practice'"
            )
        attachments = config.get("attachments")
        if not isinstance(attachments, Mapping):
            raise ModuleConfigError("practice-bridge media module: 'attachments' is required")
        AttachmentPolicy.from_config(attachments.get("default"), "default")
        practices = attachments.get("practices") or {}
        if not isinstance(practices, Mapping):
            raise ModuleConfigError("practice-bridge media module: 'practices' must be a mapping")
        for field, raw in practices.items():
            AttachmentPolicy.from_config(raw, f"practices.{field}")
        return config

    # -- who ---------------------------------------------------------------------------------

    def practice_of(self, user_id: str | None) -> str | None:
        """The practice (as it appears in user ids) of a portal user, else None."""
        if not user_id or user_id == self._bot:
            return None
        match = self._practice_re.fullmatch(user_id)
        return match["practice"] if match else None

    def policy_for(self, user_id: str) -> AttachmentPolicy | None:
        practice = self.practice_of(user_id)
        if practice is None:
            return None
        return self._practices.get(practice, self._default)

    async def _stored(self, media_id: str) -> StoredMedia | None:
        cached = self._media.get(media_id)
        if cached is not None:
            self._media.move_to_end(media_id)
            return cached
        media = await self._api.run_db_interaction(
            "practice_media_lookup", _select_media, media_id
        )
        if media is not None and media.length is not None:
            # Complete uploads never change: keep them.
            self._media[media_id] = media
            if len(self._media) > _CACHE_MEDIA:
                self._media.popitem(last=False)
        return media

    # -- Synapse callbacks -------------------------------------------------------------------

    async def is_user_allowed_to_upload_media_of_size(self, user_id: str, size: int) -> bool:
        policy = self.policy_for(user_id)
        if policy is not None:
            policy.check_size(size)
        return True

    async def get_media_config_for_user(self, user_id: str) -> dict[str, Any] | None:
        policy = self.policy_for(user_id)
        return policy.media_config() if policy is not None else None

    async def check_event_for_spam(self, event: Any) -> Literal["NOT_SPAM"]:
        if event.type not in ("m.room.message", "m.sticker") or event.is_state():
            return NOT_SPAM
        policy = self.policy_for(event.sender)
        if policy is None:
            return NOT_SPAM
        content = event.content
        sticker = event.type == "m.sticker"
        await self._check_attachment(event.sender, policy, content, sticker)
        new_content = content.get("m.new_content") if isinstance(content, Mapping) else None
        await self._check_attachment(event.sender, policy, new_content, sticker)
        return NOT_SPAM

    async def _check_attachment(
        self, sender: str, policy: AttachmentPolicy, content: Any, sticker: bool
    ) -> None:
        if not isinstance(content, Mapping):
            return
        if not sticker and msgtype_of(content) not in MEDIA_MSGTYPES:
            return
        info = content.get("info")
        info = info if isinstance(info, Mapping) else {}
        name = content.get("filename")
        if not isinstance(name, str):
            name = content.get("body")
        policy.check_type(info.get("mimetype"), name)
        policy.check_size(info.get("size"))
        encrypted = content.get("file")
        url = content.get("url")
        if not isinstance(url, str) and isinstance(encrypted, Mapping):
            url = encrypted.get("url")
        media_id = self._local_media_id(url)
        if media_id is None:
            return
        stored = await self._stored(media_id)
        if stored is None:
            return
        uploaded_in = self.practice_of(stored.uploader)
        if uploaded_in is not None and uploaded_in != self.practice_of(sender):
            raise foreign_attachment()
        policy.check_type(stored.media_type, stored.upload_name)
        policy.check_size(stored.length)

    def _local_media_id(self, url: Any) -> str | None:
        if not isinstance(url, str) or not url.startswith("mxc://"):
            return None
        server, _, media_id = url[len("mxc://") :].partition("/")
        if server != self._api.server_name or not media_id or "/" in media_id:
            return None
        return media_id

    # -- routes in front of Synapse's resources ----------------------------------------------

    def _route_client(self, request: Request) -> Check | None:
        if request.method in (b"PUT", b"DELETE") and _PROFILE_WRITE.match(request.path or b""):
            return self._check_profile_write
        match = _CLIENT_READ.match(request.path or b"")
        if match is None or request.method not in (b"GET", b"HEAD"):
            return None
        server, media_id = _decoded(match["server"]), _decoded(match["media"])
        if server != self._api.server_name:
            return None

        async def check(req: Request) -> SynapseError | None:
            return None if await self._may_read(req, media_id) else _not_found(req)

        return check

    def _route_media(self, request: Request) -> Check | None:
        path = request.path or b""
        if _UPLOAD.match(path) and request.method in (b"POST", b"PUT"):
            return self._check_upload
        match = _LEGACY_READ.match(path)
        if match is None or _decoded(match["server"]) != self._api.server_name:
            return None
        return self._practice_media_hidden(_decoded(match["media"]))

    def _route_federation(self, request: Request) -> Check | None:
        match = _FEDERATION_READ.match(request.path or b"")
        return self._practice_media_hidden(_decoded(match["media"])) if match else None

    def _practice_media_hidden(self, media_id: str) -> Check:
        """Unauthenticated and federation reads: practice media does not exist there."""

        async def check(req: Request) -> SynapseError | None:
            stored = await self._stored(media_id)
            if stored is not None and self.practice_of(stored.uploader) is not None:
                return _not_found(req)
            return None

        return check

    async def _may_read(self, request: Request, media_id: str) -> bool:
        try:
            requester = await self._api.get_user_by_req(_AuthView(request))  # type: ignore
        except SynapseError:
            return True  # Synapse's own resource answers the missing or bad token.
        user = requester.user.to_string()
        if user == self._bot:
            return True
        stored = await self._stored(media_id)
        uploaded_in = self.practice_of(stored.uploader) if stored is not None else None
        if uploaded_in is None or uploaded_in == self.practice_of(user):
            return True
        return await self._api.is_user_admin(user)

    async def _check_profile_write(self, request: Request) -> SynapseError | None:
        """Names and pictures come from the practice directory: a portal user's own session
        changes no profile field (the bridge, through the appservice, and admins still do)."""
        try:
            requester = await self._api.get_user_by_req(_AuthView(request))  # type: ignore
        except SynapseError:
            return None  # Synapse's own resource answers the missing or bad token.
        user = requester.user.to_string()
        if requester.app_service_id is not None or self.practice_of(user) is None:
            return None
        self._reporter.report("profile", user)
        errcode, sentence, _ = MEMBERSHIP_REFUSALS["profile"]
        return SynapseError(403, sentence, str(errcode))

    async def _check_upload(self, request: Request) -> SynapseError | None:
        try:
            requester = await self._api.get_user_by_req(_AuthView(request))  # type: ignore
        except SynapseError:
            return None  # Synapse's own resource answers the missing or bad token.
        policy = self.policy_for(requester.user.to_string())
        if policy is None:
            return None
        try:
            length = request.getHeader(b"Content-Length")
            if length is not None and length.isdigit():
                policy.check_size(int(length))
            filename = (request.args or {}).get(b"filename", [b""])[0]
            policy.check_type(
                (request.getHeader(b"Content-Type") or b"").decode("latin-1"),
                filename.decode("utf-8", "replace"),
            )
            if request.content is not None:
                head = await self._api.defer_to_thread(_read_head, request.content)
                sniffed = sniff(head)
                if sniffed is not None:
                    policy.check_type(sniffed, None)
        except AttachmentRefused as refusal:
            logger.info("Refused an upload by %s: %s", requester.user.to_string(), refusal.errcode)
            return refusal
        return None


class _AuthView:
    """The request as seen by ``get_user_by_req``, which stores the requester it finds on the
    request and allows that once: Synapse's own resource authenticates the request again after
    the gate, so the gate's lookup keeps its requester here."""

    requester: Any = None

    def __init__(self, request: Request) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def _decoded(raw: bytes) -> str:
    return unquote(raw.decode("ascii", "replace"))


def _not_found(request: Request) -> SynapseError:
    """Synapse's own answer for media that does not exist."""
    path = (request.path or b"").decode("ascii", "replace")
    return SynapseError(404, f"Not found '{path}'", str(Codes.NOT_FOUND))


class _MatrixRoot(UnrecognizedRequestResource):
    """Stands at ``/_matrix``: Synapse hands it the children it built there (see the module
    docstring); the named ones get a gate."""

    def __init__(self, routes: dict[bytes, Callable[[Request], Check | None]]) -> None:
        super().__init__()
        self._routes = routes

    def putChild(self, path: bytes, child: IResource) -> None:  # noqa: N802 - Twisted's name
        route = self._routes.get(path)
        gated: Any = _Gate(child, route) if route is not None else child
        super().putChild(path, gated)


class _Gate(Resource):
    """Checks the requests its route picks, then lets Synapse's resource answer every request."""

    isLeaf = True

    def __init__(self, inner: IResource, route: Callable[[Request], Check | None]) -> None:
        super().__init__()
        self._inner = inner
        self._route = route

    def render(self, request: Request) -> Any:
        check = self._route(request)
        if check is None:
            return self._serve(request)
        run_in_background(self._checked, request, check)
        return NOT_DONE_YET

    def _serve(self, request: Request) -> Any:
        return getChildForRequest(self._inner, request).render(request)

    async def _checked(self, request: Request, check: Check) -> None:
        try:
            refusal = await check(request)
        except Exception:
            logger.exception("Could not check a media request; refusing it")
            refusal = SynapseError(
                500, "The media request could not be checked.", str(Codes.UNKNOWN)
            )
        if refusal is not None:
            error = refusal.error_dict(None)
            respond_with_json(request, refusal.code, error, send_cors=True)  # type: ignore
            return
        body = self._serve(request)
        if body is not NOT_DONE_YET:  # a resource that answered at once
            request.write(body)
            request.finish()
