"""The ``webbo`` command.

::

    webbo run     [-c FILE]          the agent (and its web server), until SIGINT/SIGTERM
    webbo test    [-c FILE]          gather every input once, print line protocol, touch no output
    webbo once    [-c FILE]          gather once, flush once; non-zero if anything failed
    webbo config check [-c FILE]     validate the config: exit 0, or 1 with the reason
    webbo plugins                    what is loaded, from which distribution and version

The config file is ``-c FILE``, else ``$WEBBO_CONFIG``, else ``./webbo.toml`` if it exists, else
``/etc/webbo/webbo.toml``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from webbo.agent import __version__
from webbo.agent.config import Config, ConfigError, load_config
from webbo.agent.log import configure_logging
from webbo.agent.metric import Metric
from webbo.agent.plugins import PluginRegistry, default_registry
from webbo.agent.runner import Agent, run_until_signalled

log = structlog.get_logger("webbo.cli")

def default_config_path() -> str:
    env = os.environ.get("WEBBO_CONFIG")
    if env:
        return env
    if Path("webbo.toml").exists():
        return "webbo.toml"
    return "/etc/webbo/webbo.toml"


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", default=None,
                        help="config file (default: $WEBBO_CONFIG, ./webbo.toml, "
                             "/etc/webbo/webbo.toml)")


def _load(args: argparse.Namespace, registry: PluginRegistry) -> Config | None:
    path = args.config or default_config_path()
    try:
        return load_config(path, registry)
    except ConfigError as exc:
        print(f"{path}: invalid config:\n{exc}", file=sys.stderr)
        return None


# -- commands ----------------------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    registry = default_registry()
    config = _load(args, registry)
    if config is None:
        return 1
    print(f"{config.path}: ok ({len(config.inputs)} inputs, {len(config.outputs)} outputs, "
          f"{sum(len(g.ip_ranges) for g in config.network.ip_range_groups)} ranges)")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = default_registry()
    if args.json:
        import json

        print(json.dumps({
            "loaded": [vars(p) for p in registry.loaded],
            "failed": [vars(f) for f in registry.failed],
        }, indent=2))
        return 0
    for plugin in registry.loaded:
        provides = []
        if plugin.inputs:
            provides.append("inputs: " + ", ".join(plugin.inputs))
        if plugin.outputs:
            provides.append("outputs: " + ", ".join(plugin.outputs))
        if plugin.simulators:
            provides.append("simulators: " + ", ".join(plugin.simulators))
        print(f"{plugin.name:<16} {plugin.distribution} {plugin.version:<10} "
              f"{plugin.module}  {'; '.join(provides)}")
    for failed in registry.failed:
        print(f"{failed.name:<16} FAILED ({failed.source}): {failed.error}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    registry = default_registry()
    config = _load(args, registry)
    if config is None:
        return 1

    def emit(metric: Metric) -> None:
        line = metric.line(True)
        if line:
            sys.stdout.write(line + "\n")

    async def main() -> bool:
        agent = Agent(registry, config)
        return await agent.gather_all_once(emit)

    ok = asyncio.run(main())
    sys.stdout.flush()
    return 0 if ok else 1


def cmd_once(args: argparse.Namespace) -> int:
    registry = default_registry()
    config = _load(args, registry)
    if config is None:
        return 1

    async def main() -> tuple[bool, int]:
        return await Agent(registry, config).once(flush_timeout=args.flush_timeout)

    ok, unsent = asyncio.run(main())
    if not ok:
        print("some gathers failed (see the log)", file=sys.stderr)
    if unsent:
        print(f"{unsent} metrics were not written", file=sys.stderr)
    return 0 if ok and not unsent else 1


def cmd_run(args: argparse.Namespace) -> int:
    registry = default_registry()
    config = _load(args, registry)
    if config is None:
        return 1

    async def main() -> None:
        agent = Agent(registry, config)
        await run_until_signalled(agent)

    asyncio.run(main())
    return 0


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webbo",
        description="WebboMonitor: finds, polls and steers the miners of a farm; reads its "
                    "Mercury meters; writes everything to InfluxDB.",
    )
    parser.add_argument("--version", action="version", version=f"webbo {__version__}")
    parser.add_argument("--log-format", choices=["console", "json"], default="console",
                        help="console (readable, default) or json (one object per line)")
    parser.add_argument("--log-level", default=os.environ.get("WEBBO_LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent until stopped")
    _add_config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("test", help="gather every input once and print line protocol")
    _add_config_arg(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("once", help="gather once, write once, exit non-zero on any failure")
    _add_config_arg(p)
    p.add_argument("--flush-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long to keep trying to write (default 10)")
    p.set_defaults(func=cmd_once)

    p = sub.add_parser("config", help="config file tools")
    config_sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    check = config_sub.add_parser("check", help="validate the config file")
    _add_config_arg(check)
    check.set_defaults(func=cmd_config_check)

    p = sub.add_parser("plugins", help="list loaded plugins")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
