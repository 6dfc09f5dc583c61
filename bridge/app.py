"""Wiring the process: one place builds every component and passes dependencies in."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mautrix.util.async_db import Database

from appservice.api.applogin import AppLoginRoutes
from appservice.api.auth import Authenticator
from appservice.api.chats import ChatRoutes
from appservice.api.cors import install_cors
from appservice.api.directory import DirectoryRoutes
from appservice.api.export import ExportRoutes
from appservice.api.health import HealthRoutes
from appservice.api.routes import ROUTES
from appservice.api.server import build_api_app
from appservice.api.settings import SettingsRoutes
from appservice.commands import BotCommands, ExportFile
from appservice.commands.parse import parse_command
from appservice.enforcement import MatrixEnforcement
from appservice.homeserver import MemoryASStateStore, SynapseHomeserver
from appservice.intake import PracticeAppService
from appservice.messenger import install_messenger
from appservice.metrics import MetricsServer, api_metrics
from appservice.rooms import SynapseRooms
from appservice.synapse_check import SynapseMismatch, check_synapse
from appservice.userstate import SynapseUserState
from bridge.audit import AuditLog
from bridge.autoresponder import Autoresponder, AutoresponseSender
from bridge.chats.activity import ChatActivity
from bridge.chats.actors import Actor
from bridge.chats.listing import ChatDirectory
from bridge.chats.repair import MembershipRepair
from bridge.chats.service import ChatService
from bridge.chats.store import ChatStore
from bridge.chats.userstate import UserStateMirror
from bridge.constants import ExportFormat
from bridge.db import create_database
from bridge.directory import DirectoryService, DirectoryStore
from bridge.directory.applogin import AppLoginService
from bridge.events import EventQueue, Pipeline
from bridge.export import ExportService, Requester
from bridge.health import Health
from bridge.metrics import Metrics, Sampler
from bridge.notifications import Notifications
from bridge.rules import PostHocRules, RuleStore
from bridge.rules.refused import RefusalLog
from bridge.settings.propagate import PolicyPropagator
from bridge.settings.service import SettingsService
from bridge.settings.store import SettingsStore
from config import Config

log = logging.getLogger("practice.app")


class Bridge:
    """The running bridge: database, appservice, pipeline and provisioning API."""

    def __init__(self, config: Config, *, db: Database | None = None) -> None:
        self.config = config
        self.db = db or create_database(
            config.appservice.database, config.appservice.database_opts
        )
        self.mapper = config.identity_mapper()
        self.metrics = Metrics()
        self.queue = EventQueue(self.db)
        self.pipeline = Pipeline(self.db, self.queue, metrics=self.metrics)
        self.audit = AuditLog(self.db)
        self.az = PracticeAppService(
            server=config.homeserver.address,
            domain=config.homeserver.domain,
            as_token=config.appservice.as_token,
            hs_token=config.appservice.hs_token,
            bot_localpart=config.appservice.bot_username,
            id=config.appservice.id,
            verify_ssl=config.homeserver.verify_ssl,
            state_store=MemoryASStateStore(),
            ephemeral_events=True,
            log=logging.getLogger("practice.appservice"),
            queue=self.queue,
            pipeline=self.pipeline,
            metrics=self.metrics,
            refusals=RefusalLog(self.audit, self.mapper),
        )
        self.homeserver = SynapseHomeserver(self.az, config.homeserver.address.rstrip("/"))
        self.directory_store = DirectoryStore(self.db)
        self.directory = DirectoryService(
            self.directory_store,
            self.audit,
            self.homeserver,
            self.mapper,
            config.practice.plans,
            config.practice.default_plan,
        )
        self.chat_store = ChatStore(self.db)
        self.rooms = SynapseRooms(self.az)
        bot = self.mapper.bot_mxid
        self.chats = ChatService(
            self.directory_store,
            self.chat_store,
            self.rooms,
            self.audit,
            bot,
            config.practice.plans,
        )
        self.directory.client_listeners.append(self.chats.client_changed)
        self.app_logins = AppLoginService(self.directory, self.audit)
        self.user_state = UserStateMirror(
            self.chat_store, self.rooms, SynapseUserState(self.az, config.homeserver.address)
        )
        self.notifications = Notifications(
            config.notifications,
            self.db,
            self.mapper,
            self.directory_store,
            self.user_state,
            self.audit,
            lambda: self.az.intent.api,
            metrics=self.metrics,
        )
        self.chat_directory = ChatDirectory(
            self.directory_store,
            self.chat_store,
            self.user_state,
            bot,
            unread_counts=self.notifications.index.unread_counts,
            metrics=self.metrics,
        )
        self.metrics.followed_users.set_function(lambda: len(self.user_state.following))
        # First among the handlers: a violation is on record before any other effect of it.
        self.rules = PostHocRules(
            RuleStore(self.db), self.audit, MatrixEnforcement(self.az, self.rooms), self.mapper
        )
        self.pipeline.add_handler(self.rules)
        self.membership = MembershipRepair(
            self.chats, self.chat_store, self.rooms, self.homeserver, self.audit, self.mapper
        )
        self.pipeline.add_handler(self.membership)
        self.module_active = False  # the Synapse module answered the start-up probe
        # The effects of messages work on whole batches (one statement per kind of effect).
        self.pipeline.add_batch_handler(
            ChatActivity(self.chat_store, bot, is_command=self._is_staff_command)
        )
        self.settings_store = SettingsStore(self.db)
        self.policy = PolicyPropagator(self.settings_store, self.chats.push_policy)
        self.settings = SettingsService(
            self.settings_store, self.directory_store, self.rooms, self.audit, self.policy
        )
        self.autoresponder = Autoresponder(self.mapper)
        self.pipeline.add_batch_handler(self.autoresponder)
        self.pipeline.add_batch_handler(self.notifications.outbox)
        self.autoresponses = AutoresponseSender(self.db, self.rooms)
        self.commands = BotCommands(
            self.db,
            self.az,
            self.rooms,
            self.directory_store,
            self.chat_store,
            self.chats,
            self.chat_directory,
            metrics=self.metrics,
        )
        self.pipeline.add_handler(self.commands.intake)
        # A Matrix app's first look: the private room with the bot, the commands listed.
        self.app_logins.issued_listeners.append(self.commands.private.open_with_welcome)
        self.export = ExportService(
            self.directory_store,
            self.chat_store,
            self.rooms,
            self.audit,
            bot=bot,
            bot_name=config.appservice.bot_displayname or "Practice bot",
            media_base=config.homeserver.address,
        )
        self.commands.exporter = _BotExporter(self.export)
        self.auth = Authenticator(
            config.provisioning.shared_secret,
            self.homeserver,
            self.mapper,
            config.provisioning.token_cache_seconds,
        )
        self.health = Health(self.db, self.queue, self.pipeline, self.homeserver.answers)
        self.api = build_api_app(
            config.provisioning.prefix,
            ROUTES,
            [
                HealthRoutes(self.health),
                DirectoryRoutes(self.directory, self.audit, self.auth),
                AppLoginRoutes(self.app_logins, self.auth),
                SettingsRoutes(self.directory, self.settings),
                ChatRoutes(self.chats, self.chat_directory, self.user_state),
                ExportRoutes(self.export),
            ],
            self.auth,
            self.directory_store,
        )
        origins = config.provisioning.cors_origins
        install_cors(self.api, origins, config.provisioning.shared_secret)
        # Outermost: every answer is counted, the middlewares' own refusals too.
        self.api.middlewares.insert(0, api_metrics(self.metrics, config.provisioning.prefix))
        self.az.app.add_subapp(config.provisioning.prefix, self.api)
        install_messenger(
            self.az.app, config.homeserver.address, origins, config.provisioning.prefix
        )
        self.metrics_server: MetricsServer | None = None
        if config.metrics.enabled:
            sampler = Sampler(
                self.metrics, self.queue, self.pipeline, self.notifications.store, self.health
            )
            self.metrics_server = MetricsServer(
                self.metrics, sampler, config.metrics.listen_address, config.metrics.listen_port
            )
        self._prune_task: asyncio.Task[None] | None = None
        self._names_task: asyncio.Task[int] | None = None
        self._started = False

    def _is_staff_command(self, sender: str, content: dict[str, Any]) -> bool:
        who = self.mapper.parse(sender)  # Cached per sender: cheaper than parsing the body.
        return who is not None and who.kind == "staff" and parse_command(content) is not None

    async def start(self) -> None:
        """Start everything; :class:`SynapseMismatch` when Synapse is not the one the config
        describes (nothing else started then)."""
        findings = await check_synapse(self.config)
        for finding in findings:
            if finding.leak:
                log.error("%s", finding.text)
            elif not finding.problem:
                log.warning("%s", finding.text)
        problems = [finding for finding in findings if finding.problem]
        if problems:
            raise SynapseMismatch(problems)
        self._started = True
        await self.db.start()
        if self.metrics_server is not None:
            await self.metrics_server.start()
        host, port = self.config.appservice.hostname, self.config.appservice.port
        await self.az.start(host, port)
        log.info(
            "Listening on %s:%d (provisioning under %s)",
            host,
            port,
            self.config.provisioning.prefix,
        )
        await self._prepare_bot()
        self.pipeline.start()
        self.rules.start()
        self.membership.start()
        self.policy.start()
        self.autoresponses.start()
        self.notifications.start()
        self.commands.start()
        self._prune_task = asyncio.create_task(self._prune_loop())
        # Chats from before the bridge named rooms get their names (once; in the background).
        self._names_task = asyncio.create_task(self.chats.names.catch_up())
        self.az.ready = True

    async def _prepare_bot(self) -> None:
        bot = self.az.intent
        await bot.ensure_registered()
        name = self.config.appservice.bot_displayname
        if name:
            try:
                await bot.set_displayname(name)
            except Exception:
                log.warning("Could not set the bot's display name", exc_info=True)
        self.module_active = await self.rules.check_module()
        # Without the module nobody promotes the bot: say so at once instead of waiting.
        await self._wait_for_admin(timeout=10 if self.module_active else 0)
        try:
            await self.az.ping_self()
            log.info("The homeserver reaches the bridge (appservice ping answered)")
        except Exception as e:
            log.warning(
                "The homeserver could not ping the bridge: %s. Check that "
                "appservice.address is reachable from Synapse and the registration "
                "is loaded.",
                e,
            )

    async def _wait_for_admin(self, timeout: float = 10) -> None:
        """The Synapse module promotes the bot right after it registers; wait for that."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self.homeserver.bot_is_admin():
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "The bot %s is not a server admin: ending sessions and deleting "
                    "chats will fail. Load the practice-bridge Synapse module or make "
                    "the bot an admin (docs/admin.md).",
                    self.az.bot_mxid,
                )
                return
            await asyncio.sleep(0.1)
        log.info("The bot %s is a server admin", self.az.bot_mxid)

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.queue.prune()
            except Exception:
                log.warning("Pruning the event queue failed", exc_info=True)
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        """Stop everything that was started; stopping twice is harmless."""
        if not self._started:
            return
        self._started = False
        self.az.ready = False
        for task in (self._prune_task, self._names_task):
            if task:
                task.cancel()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.policy.stop()
        await self.autoresponses.stop()
        await self.notifications.stop()
        await self.user_state.stop()
        await self.commands.stop()
        await self.rules.stop()
        await self.membership.stop()
        await self.pipeline.stop()
        await self.az.stop()
        await self.db.stop()


class _BotExporter:
    """``!pb export`` through the export service; the bot sends the file privately."""

    def __init__(self, service: ExportService) -> None:
        self.service = service

    async def export_chat(self, actor: Actor, chat_id: str, fmt: ExportFormat) -> ExportFile:
        done = await self.service.export_file(Requester.of(actor, "bot"), chat_id, fmt)
        return ExportFile(done.filename, done.content_type, done.chunks(), done.size)
