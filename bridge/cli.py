"""The `practice-bridge` command: run, generate-config, generate-registration, local."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging.config
import os
import signal
import sys

from config import Config, ConfigError, generate_config, load_config
from registration.workers import Backing

log = logging.getLogger("practice.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="practice-bridge", description="The practice messaging bridge."
    )
    parser.add_argument("-c", "--config", default="config.yaml", help="the bridge config file")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bridge (the default)")
    gen = sub.add_parser("generate-config", help="write a config with fresh secrets")
    gen.add_argument("--force", action="store_true", help="overwrite an existing config")
    reg = sub.add_parser(
        "generate-registration",
        help="write the appservice registration and print the Synapse snippet",
    )
    reg.add_argument("-r", "--registration", default="registration.yaml")
    local = sub.add_parser("local", help="run a local Synapse and the bridge (make run)")
    local.add_argument("--data", default="data", help="folder for configs and databases")
    local.add_argument("--demo", action="store_true", help="seed a demo practice")
    for flag, env, whose, preferred in (
        ("--synapse-port", "PRACTICE_BRIDGE_SYNAPSE_PORT", "Synapse's", 8008),
        ("--bridge-port", "PRACTICE_BRIDGE_PORT", "the bridge's", 29340),
    ):
        local.add_argument(
            flag,
            type=_port,
            default=os.environ.get(env),
            help=f"{whose} port (default: env {env}, else kept from the first run, which "
            f"prefers {preferred})",
        )
    local.add_argument(
        "--workers",
        action="store_true",
        help="Synapse with workers on PostgreSQL and Redis (make run WORKERS=1); keep its data "
        "in a folder of its own",
    )
    local.add_argument(
        "--postgres",
        default=Backing.postgres,
        help="with --workers: a PostgreSQL server where Synapse's database may be created "
        "(default: %(default)s)",
    )
    local.add_argument(
        "--redis", default=Backing.redis, help="with --workers: Redis (default: %(default)s)"
    )
    from bridge.export.command import add_parser as add_export_parser

    add_export_parser(sub)
    return parser


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return port


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = _dispatch(args)
    except ConfigError as e:
        print(f"practice-bridge: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "generate-config":
        if os.path.exists(args.config) and not args.force:
            print(
                f"practice-bridge: {args.config} exists; use --force to overwrite", file=sys.stderr
            )
            return 1
        generate_config(args.config)
        print(f"Wrote {args.config}. Next: practice-bridge generate-registration")
        return 0
    if args.command == "generate-registration":
        from registration import generate_registration, homeserver_snippet

        config = _load(args.config)
        try:
            generate_registration(config, args.registration)
        except OSError as e:
            print(
                f"practice-bridge: cannot write {args.registration}: {e.strerror}", file=sys.stderr
            )
            return 1
        print(f"Wrote {args.registration} and stored its tokens in {args.config}.\n")
        print(homeserver_snippet(config, args.registration))
        return 0
    if args.command == "local":
        from bridge.local import run_local

        return run_local(
            args.data,
            demo=args.demo,
            synapse_port=args.synapse_port,
            bridge_port=args.bridge_port,
            workers=Backing(args.postgres, args.redis) if args.workers else None,
        )
    config = _load(args.config)
    config.require_tokens()
    setup_logging(config)
    if args.command == "export":
        from bridge.export.command import export_command

        return asyncio.run(export_command(config, args))
    return asyncio.run(run_bridge(config))


def _load(path: str) -> Config:
    config = load_config(path)
    if config.dropped_keys:
        print(
            f"practice-bridge: {path}: ignoring keys this version does not know: "
            + ", ".join(config.dropped_keys),
            file=sys.stderr,
        )
    return config


def setup_logging(config: Config) -> None:
    try:
        settings = dict(config.logging)
        # Loggers created at import time (practice.cli, practice.local) must keep logging.
        settings.setdefault("disable_existing_loggers", False)
        logging.config.dictConfig(settings)
    except Exception as e:  # dictConfig raises whatever the handler or filter it builds raises
        reasons: list[str] = []
        cause: BaseException | None = e
        while cause is not None and len(reasons) < 3:
            reason = str(cause) or type(cause).__name__
            if reason not in reasons:
                reasons.append(reason)
            cause = cause.__cause__
        raise config.error(
            "logging", "is not a valid logging config: " + ": ".join(reasons)
        ) from None


async def run_bridge(config: Config) -> int:
    from bridge.app import Bridge

    bridge = Bridge(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
    except Exception as e:
        log.error("Start-up failed: %s", e)
        await bridge.stop()
        return 1
    # What start-up built lives as long as the process: keep it out of the collector's full
    # passes, which would otherwise walk all of it again after every few large responses.
    gc.freeze()
    log.info("practice-bridge is running")
    await stop.wait()
    log.info("Stopping")
    await bridge.stop()
    return 0
