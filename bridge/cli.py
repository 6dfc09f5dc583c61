"""The `practice-bridge` command: run, check, generate-config, generate-registration, snippet,
local, export."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging.config
import os
import signal
import sys
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from config import Config, ConfigError, load_config, write_config
from registration.workers import Backing

log = logging.getLogger("practice.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="practice-bridge", description="The practice messaging bridge."
    )
    parser.add_argument("-c", "--config", default="config.yaml", help="the bridge config file")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bridge (the default)")
    check = sub.add_parser(
        "check",
        help="compare the running Synapse with the config and registration: one line per "
        "difference; exit 1 for a problem that stops the bridge, 2 for a recommended setting "
        "that is off, 0 when all is as expected",
    )
    check.add_argument("-r", "--registration", default="registration.yaml")
    gen = sub.add_parser("generate-config", help="write a config with fresh secrets")
    gen.add_argument("--force", action="store_true", help="overwrite an existing config")
    gen.add_argument(
        "--set",
        action="append",
        default=[],
        type=_setting,
        metavar="KEY=VALUE",
        help="set a key (dotted, e.g. homeserver.domain=example.com; the value is read as "
        "YAML); repeat for more",
    )
    reg = sub.add_parser(
        "generate-registration",
        help="write the appservice registration with fresh tokens and print the lines to "
        "merge into homeserver.yaml",
    )
    snippet = sub.add_parser(
        "snippet",
        help="print the lines to merge into homeserver.yaml again, from the existing "
        "registration (its tokens stay as they are)",
    )
    for command in (reg, snippet):
        command.add_argument("-r", "--registration", default="registration.yaml")
        command.add_argument(
            "--synapse-copy",
            metavar="PATH",
            help="where Synapse reads its copy of the registration, if not from the file "
            "itself (docs/admin.md)",
        )
    reg.add_argument(
        "--force",
        action="store_true",
        help="replace an existing registration: new tokens (copy it to Synapse again and "
        "restart Synapse and the bridge)",
    )
    snippet.add_argument(
        "--merge",
        metavar="HOMESERVER_YAML",
        help="print this homeserver.yaml ('-': read from stdin) with the lines merged in: "
        "added to its lists, the bridge's earlier entries replaced, the rest kept",
    )
    snippet.add_argument(
        "--recommended",
        action="store_true",
        help="with --merge: also set the recommended privacy settings (registration, presence, "
        "URL previews and federation off; docs/admin.md)",
    )
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


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        parsed = YAML(typ="safe", pure=True).load(value) if value.strip() else ""
    except YAMLError:
        parsed = value
    return key.strip(), parsed


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
        unset = write_config(args.config, **dict(args.set))
        if unset:
            keys = ", ".join(unset[:-1]) + (" and " if len(unset) > 1 else "") + unset[-1]
            print(
                f"Wrote {args.config}. Next: edit it to set {keys} (they have no default; "
                "the file says what each one is), then run `practice-bridge "
                "generate-registration`."
            )
        else:
            print(f"Wrote {args.config}. Next: practice-bridge generate-registration")
        return 0
    if args.command in ("generate-registration", "snippet"):
        return _registration(args)
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
    if args.command == "check":
        return asyncio.run(check_command(config, args.registration))
    if args.command == "export":
        from bridge.export.command import export_command

        return asyncio.run(export_command(config, args))
    return asyncio.run(run_bridge(config))


def _registration(args: argparse.Namespace) -> int:
    """generate-registration and snippet: status on stderr, the snippet alone on stdout."""
    from registration import (
        generate_registration,
        homeserver_snippet,
        read_registration,
        registration_mismatches,
        snippet_entries,
    )
    from registration.hardening import RECOMMENDED
    from registration.homeserver import merge_homeserver_config

    def fail(message: str) -> int:
        print(f"practice-bridge: {message}", file=sys.stderr)
        return 1

    config = _load(args.config)
    path = args.registration
    synapse_copy = args.synapse_copy or path
    if args.command == "generate-registration":
        if os.path.exists(path) and not args.force:
            return fail(
                f"{path} exists and Synapse may be using its tokens. `practice-bridge snippet` "
                "prints the lines for homeserver.yaml again; `generate-registration --force` "
                "makes new tokens (then give Synapse the new file and restart both)."
            )
        try:
            generate_registration(config, path)
        except OSError as e:
            return fail(f"cannot write {path}: {e.strerror}")
        copy = "" if synapse_copy == path else f" (copy it to {synapse_copy} for Synapse)"
        print(
            f"Wrote {path}{copy} and stored its tokens in {args.config}. Merge the lines "
            "below into homeserver.yaml; `practice-bridge snippet` prints them again.",
            file=sys.stderr,
        )
    else:
        try:
            mismatches = registration_mismatches(config, read_registration(path))
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e)
            return fail(f"cannot read the registration {path}: {reason}")
        if mismatches:
            return fail(
                f"{path} does not belong to {args.config}: "
                + "; ".join(mismatches)
                + ". `generate-registration --force` writes a new one."
            )
    if args.command == "snippet" and args.recommended and not args.merge:
        return fail("--recommended goes with --merge HOMESERVER_YAML")
    if args.command == "snippet" and args.merge:
        try:
            if args.merge == "-":
                text = sys.stdin.read()
            else:
                with open(args.merge) as f:
                    text = f.read()
            entries = snippet_entries(config, synapse_copy)
            if args.recommended:
                entries = {**RECOMMENDED, **entries}
            merged = merge_homeserver_config(text, entries)
        except OSError as e:
            return fail(f"cannot read {args.merge}: {e.strerror}")
        except (ValueError, YAMLError) as e:
            return fail(f"cannot merge into {args.merge}: {str(e).splitlines()[0]}")
        sys.stdout.write(merged if merged.endswith("\n") else merged + "\n")
        return 0
    sys.stdout.write(homeserver_snippet(config, synapse_copy))
    return 0


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


def _registration_lines(config: Config, registration: str) -> list[str]:
    from registration import read_registration, registration_mismatches

    if not os.path.exists(registration):
        return []
    mismatches = registration_mismatches(config, read_registration(registration))
    return [f"error: {registration}: {mismatch}" for mismatch in mismatches]


async def check_command(config: Config, registration: str) -> int:
    from appservice.synapse_check import check_synapse

    lines = _registration_lines(config, registration)
    findings = await check_synapse(config)
    lines += [str(finding) for finding in findings]
    for line in lines:
        print(line)
    if any(line.startswith("error:") for line in lines):
        return 1
    if lines:
        return 2
    print(f"Synapse at {config.homeserver.address} is as the config describes")
    return 0


GC_YOUNG_THRESHOLD = 20_000  # allocations between the collector's young passes


async def run_bridge(config: Config) -> int:
    from appservice.synapse_check import SynapseMismatch
    from bridge.app import Bridge

    bridge = Bridge(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
    except SynapseMismatch as e:
        for problem in e.problems:
            log.error("%s", problem.text)
        log.error("Not starting: Synapse is not as the config describes (practice-bridge check)")
        await bridge.stop()
        return 1
    except Exception as e:
        log.error("Start-up failed: %s", e)
        await bridge.stop()
        return 1
    # What start-up built lives as long as the process: keep it out of the collector's full
    # passes, which would otherwise walk all of it again after every few large responses.
    gc.freeze()
    # A large answer (a chat list of thousands) makes tens of thousands of short-lived objects:
    # with the collector's default (a young pass every 700), passes in the middle of building it
    # promote them, and full passes then walk them again, which shows as the slowest requests.
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    log.info("practice-bridge is running")
    await stop.wait()
    log.info("Stopping")
    await bridge.stop()
    return 0
