"""The ``webbo`` command.

::

    webbo run     [-c FILE]          the agent (and its web server), until SIGINT/SIGTERM
    webbo test    [-c FILE]          gather every input once, print line protocol, touch no output
    webbo once    [-c FILE]          gather once, flush once; non-zero if anything failed
    webbo config check [-c FILE]     validate the config: exit 0, or 1 with the reason
    webbo plugins                    what is loaded, from which distribution and version
    webbo scan FIRST-LAST|CIDR [--json] [-c FILE]   one sweep; found devices as a table or JSON
    webbo command COMMAND [--macs A,B | --ip-range F-L | --all] [--params JSON] [--write]
                                     a command of the miners' own API on known miners
    webbo simulate --miners N --base 127.x.y.z [--http-port P] [--seed S] [--meters M]
                                     a simulated farm on loopback until SIGTERM/SIGINT
    webbo demo                       a simulated farm and the agent (with its web UI) polling it
    webbo apikey create [-c FILE] [--name NAME]   a new API key, alone on stdout's last line
    webbo apikey list|revoke ID      API keys with created/last-used times; revoke one
    webbo user set-password [-c FILE] [--user NAME]   (reads stdin when it is not a terminal)
    webbo cluster nkey --out FILE   a new nkey: the seed into FILE (0600), the public key printed
    webbo alerts list|silence|silences|unsilence|test   active alerts, maintenance silences

The config file is ``-c FILE``, else ``$WEBBO_CONFIG``, else ``./webbo.toml`` if it exists, else
``/etc/webbo/webbo.toml``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from webbo.agent import __version__
from webbo.agent.core.agent import Agent, run_until_signalled
from webbo.agent.core.config import Config, ConfigError, load_config
from webbo.agent.core.log import configure_logging
from webbo.agent.core.metric import Metric
from webbo.agent.core.plugins import PluginRegistry, default_registry

if TYPE_CHECKING:
    from webbo.web.state import StateStore

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
        provides = [f"{table}: {', '.join(names)}" for table, names in plugin.provides.items()
                    if names]
        if plugin.replaced:
            provides.append("replaces built-in " + ", ".join(plugin.replaced))
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

    async def main() -> int:
        agent = Agent(registry, config)
        extra = []
        if config.web.enabled:
            from webbo.web.server import WebServer

            try:
                web = WebServer(agent)
                await web.start()
            except (OSError, ValueError, RuntimeError) as exc:
                print(f"cannot start the web server on {config.web.listen}: {exc}",
                      file=sys.stderr)
                return 1
            extra.append(web.serving())
        if config.web.metrics:
            from webbo.web.metrics import MetricsServer

            metrics = MetricsServer(agent)
            try:
                await metrics.start()
            except (OSError, ValueError) as exc:
                print(f"cannot serve /metrics on {config.web.metrics_listen}: {exc}",
                      file=sys.stderr)
                return 1
            extra.append(metrics.serving())
        await run_until_signalled(agent, extra)
        return 0

    return asyncio.run(main())


def _web_store(args: argparse.Namespace) -> StateStore | None:
    """The web state file of the config's ``[web] state_dir``."""
    from webbo.web.state import StateStore

    config = _load(args, default_registry())
    return None if config is None else StateStore(config.state_dir)


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from webbo.agent.core.audit import AUDIT_FILE, AuditLog
    from webbo.web.auth import create_api_key

    store = _web_store(args)
    if store is None:
        return 1
    key, record = create_api_key(store, args.name or "")
    AuditLog(store.dir / AUDIT_FILE).write(
        {"event": "apikey.create", "who": "cli", "key_id": record.id, "name": record.name})
    print(f"API key {record.id} created" + (f" ({record.name})" if record.name else "")
          + "; it is shown only now:", file=sys.stderr)
    print(key)
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    import time

    store = _web_store(args)
    if store is None:
        return 1

    def when(ts: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"

    for key in store.data.api_keys:
        print(f"{key.id}  created {when(key.created)}  last used {when(key.last_used)}  "
              f"{key.name}")
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from webbo.agent.core.audit import AUDIT_FILE, AuditLog

    store = _web_store(args)
    if store is None:
        return 1
    if not store.remove_key(args.key_id):
        print(f"no API key with id {args.key_id} (see `webbo apikey list`)", file=sys.stderr)
        return 1
    AuditLog(store.dir / AUDIT_FILE).write(
        {"event": "apikey.revoke", "who": "cli", "key_id": args.key_id})
    print(f"API key {args.key_id} revoked")
    return 0


def cmd_user_set_password(args: argparse.Namespace) -> int:
    import getpass

    from webbo.web.passwords import MIN_PASSWORD_LENGTH

    store = _web_store(args)
    if store is None:
        return 1
    if sys.stdin.isatty():
        password = getpass.getpass(f"new password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ; nothing changed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"a password needs at least {MIN_PASSWORD_LENGTH} characters; nothing changed",
              file=sys.stderr)
        return 1
    store.set_password(args.user, password)
    print(f"password of {args.user!r} changed")
    return 0


def cmd_cluster_nkey(args: argparse.Namespace) -> int:
    from webbo.agent.cluster.nkey import new_user_nkey, write_seed

    seed, public = new_user_nkey()
    try:
        write_seed(Path(args.out), seed)
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"seed written to {args.out} (name it in [cluster] or [hub] nkey_seed); the public "
          "key for the NATS server's config:", file=sys.stderr)
    print(public)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from webbo.agent.cli.status import read_status, render

    registry = default_registry()
    config = _load(args, registry)
    if config is None:
        return 1
    status = read_status(config.state_dir)
    if args.json:
        import json

        print(json.dumps(status, indent=2))
        return 0 if status is not None else 1
    text, code = render(status, config.state_dir)
    print(text)
    return code


def cmd_command(args: argparse.Namespace) -> int:
    """A command of the miners' own API on the selected known miners, through the same
    controller, safety rules and audit log as the API's /api/mining/miners/command."""
    import getpass
    import json

    from webbo.agent.fleet.control import Controller
    from webbo.agent.fleet.discovery import MinerFleet
    from webbo.agent.fleet.driver import Action
    from webbo.agent.fleet.selectors import SelectionError, Selector

    try:
        params = json.loads(args.params) if args.params else {}
        if not isinstance(params, dict):
            raise ValueError("--params must be a JSON object")
    except ValueError as exc:
        print(f"webbo command: {exc}", file=sys.stderr)
        return 2
    if args.ip_range:
        first, sep, last = args.ip_range.partition("-")
        selector = Selector(ip_range=(first.strip(), (last if sep else first).strip()))
    else:
        macs = [m.strip().lower() for m in (args.macs or "").split(",") if m.strip()]
        selector = Selector(macs="*" if args.all or not macs else tuple(macs))
    registry = default_registry()
    config = _load(args, registry)
    if config is None:
        return 1

    async def main() -> dict[str, Any] | str:
        agent = Agent(registry, config)
        fleet, controller = agent.service(MinerFleet), agent.service(Controller)
        if fleet is None or controller is None:
            return "miner support is not loaded (see `webbo plugins`)"
        fleet.configure(config)  # reads the inventory the running agent keeps
        fleet.inventory.path = None  # and leaves it to that agent
        try:
            task = controller.start_action(
                "command", f"cli:{getpass.getuser()}", selector, Action.RAW,
                {"command": args.name, "params": params, "write": args.write})
            assert task.handle is not None
            await task.handle
            return task.result  # type: ignore[no-any-return]
        except SelectionError as exc:
            return str(exc)
        finally:
            await fleet.close()
            await agent.tasks.close()

    result = asyncio.run(main())
    if isinstance(result, str):
        print(f"webbo command: {result}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if all(r.get("success") for r in result.values()) else 1


def cmd_alerts(args: argparse.Namespace) -> int:
    from webbo.agent.cli.alerts import run

    args.config = getattr(args, "config", None)
    config = _load(args, default_registry())
    if config is None:
        return 1
    return run(config, args)


def cmd_scan(args: argparse.Namespace) -> int:
    import json

    from webbo.agent.fleet.scan import Progress, parse_target, scan, scan_config, table

    registry = default_registry()
    config = _load(args, registry) if args.config else None
    if args.config and config is None:
        return 1
    try:
        first, last = parse_target(args.target)
        cfg = scan_config(registry, config, first, last)
    except ConfigError as exc:
        print(f"webbo scan: {exc}", file=sys.stderr)
        return 2
    from webbo.agent.cli.simulate import raise_file_limit

    raise_file_limit()
    progress = Progress(cfg.network.ip_range_groups[0].ip_ranges[0].size)
    try:
        rows, fleet = asyncio.run(scan(registry, cfg, progress.step))
    finally:
        progress.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(table(rows))
    last_sweep = fleet.last_sweep
    print(f"{len(rows)} devices, {len(fleet.inventory.unknown)} unknown answerers, "
          f"{last_sweep.addresses} addresses in {last_sweep.duration_s:.1f}s", file=sys.stderr)
    return 0


def _shares(text: str) -> dict[str, float]:
    shares: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        try:
            shares[name.strip()] = float(value) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=SHARE, got {item!r}") from None
    return shares


def write_farm_config(path: Path, farm: dict[str, Any], *, registry: PluginRegistry,
                      http_port: int) -> None:
    """The config that reads a simulated farm (``webbo simulate --write-config``)."""
    from webbo.agent.cli.demo import demo_config, meter_tables

    farm = {**farm, "meter_config": meter_tables(farm.get("meters", []))}
    state = path.resolve().parent / f"{path.stem}-state"
    path.write_text(demo_config(state, farm, registry, "127.0.0.1:8000", http_port),
                    encoding="utf-8")


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from webbo.agent.cli.simulate import default_http_port, run
    from webbo.agent.core.contract import SimOptions

    registry = default_registry()
    if args.http_port is None:
        args.http_port = default_http_port()
    try:
        extra = json.loads(args.extra) if args.extra else {}
        if not isinstance(extra, dict):
            raise ValueError("--extra must be a JSON object")
        options = SimOptions(seed=args.seed, http_port=args.http_port,
                             faults=_shares(args.faults),
                             extra={**extra, "quirks": _shares(args.quirks)})
        families = [f for f in (args.families or "").split(",") if f] or None
        if args.http_port == default_http_port() != 80:
            print(f"webbo simulate: not allowed to bind port 80 here, so the simulated web "
                  f"interfaces listen on {args.http_port}; read the farm with the config "
                  f"--write-config FILE writes (e.g. webbo scan FIRST-LAST -c FILE)",
                  file=sys.stderr)
        on_ready = (functools.partial(write_farm_config, Path(args.write_config),
                                      registry=registry, http_port=args.http_port)
                    if args.write_config else None)
        return asyncio.run(run(registry, miners=args.miners, base=args.base, options=options,
                               meters=args.meters, families=families, on_ready=on_ready))
    except (ValueError, argparse.ArgumentTypeError, OSError) as exc:
        print(f"webbo simulate: {exc}", file=sys.stderr)
        return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from webbo.agent.cli.demo import run_demo

    return run_demo(args, default_registry(), cmd_run)


# -- parser ------------------------------------------------------------------------------------


def _add_command_parser(sub: Any) -> None:
    p = sub.add_parser("command", help="run a command of the miners' own API on known miners")
    p.add_argument("name", metavar="COMMAND",
                   help="e.g. summary, get_psu (Whatsminer v2), get.device.info (v3), stats")
    chosen = p.add_mutually_exclusive_group()
    chosen.add_argument("--macs", metavar="MAC,MAC", help="these miners")
    chosen.add_argument("--ip-range", metavar="FIRST-LAST", help="the miners in this range")
    chosen.add_argument("--all", action="store_true", help="every known miner (the default)")
    p.add_argument("--params", metavar="JSON", default="",
                   help='its parameters, e.g. \'{"respbefore": "true"}\'')
    p.add_argument("--write", action="store_true",
                   help="it changes the miners (needs raw_writes = true for their driver)")
    _add_config_arg(p)
    p.set_defaults(func=cmd_command)


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

    p = sub.add_parser("status", help="the running agent's state (inputs, outputs, devices)")
    _add_config_arg(p)
    p.add_argument("--json", action="store_true", help="the raw status as JSON")
    p.set_defaults(func=cmd_status)

    from webbo.agent.cli.alerts import add_parser as add_alerts_parser

    p = add_alerts_parser(sub)
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("apikey", help="API keys (create, list, revoke)")
    apikey_sub = p.add_subparsers(dest="apikey_command", metavar="SUBCOMMAND")
    create = apikey_sub.add_parser("create", help="make a key; it is printed alone on the "
                                                   "last line of stdout, shown only once")
    _add_config_arg(create)
    create.add_argument("--name", default="", help="what the key is for (shown in lists)")
    create.set_defaults(func=cmd_apikey_create)
    listing = apikey_sub.add_parser("list", help="keys with created and last-used times")
    _add_config_arg(listing)
    listing.set_defaults(func=cmd_apikey_list)
    revoke = apikey_sub.add_parser("revoke", help="revoke a key by its id")
    _add_config_arg(revoke)
    revoke.add_argument("key_id", help="the id `webbo apikey list` shows")
    revoke.set_defaults(func=cmd_apikey_revoke)

    p = sub.add_parser("user", help="web users")
    user_sub = p.add_subparsers(dest="user_command", metavar="SUBCOMMAND")
    setpw = user_sub.add_parser("set-password", help="set a web user's password (read from "
                                                     "stdin when it is not a terminal)")
    _add_config_arg(setpw)
    setpw.add_argument("--user", default="miner", help="user name (default: miner)")
    setpw.set_defaults(func=cmd_user_set_password)

    p = sub.add_parser("cluster", help="sites and a hub over NATS (docs/deploy.md)")
    cluster_sub = p.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND")
    nkey = cluster_sub.add_parser("nkey", help="make an nkey: the seed into a file (0600), "
                                                "the public key on stdout")
    nkey.add_argument("--out", required=True, metavar="FILE", help="where the seed goes "
                      "(must not exist)")
    nkey.set_defaults(func=cmd_cluster_nkey)

    p = sub.add_parser("scan", help="sweep an address range once and list what answers")
    p.add_argument("target", metavar="FIRST-LAST|CIDR",
                   help="e.g. 10.30.0.1-10.30.0.254, 10.30.0.1-254 or 10.30.0.0/24")
    p.add_argument("--json", action="store_true", help="one JSON array on stdout")
    _add_config_arg(p)
    p.set_defaults(func=cmd_scan)

    _add_command_parser(sub)

    p = sub.add_parser("simulate", help="run a simulated farm on loopback until stopped")
    p.add_argument("--miners", type=int, default=10, metavar="N")
    p.add_argument("--base", default="127.77.0.1", metavar="127.X.Y.Z",
                   help="first address (127.0.0.0/8 only); miners take consecutive ones")
    p.add_argument("--http-port", type=int, default=None, metavar="P",
                   help="port of the simulated web interfaces (default 80, as real miners and "
                        "the drivers' defaults; 8080 where this user may not bind 80)")
    p.add_argument("--write-config", metavar="FILE", default="",
                   help="once ready, write a webbo.toml that reads this farm (ranges, inputs, "
                        "meters) to FILE")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--meters", type=int, default=0, metavar="M",
                   help="simulated meters of each meter family (pseudo-terminals)")
    p.add_argument("--faults", default="", metavar="NAME=SHARE,...",
                   help="share of faulty miners: silent, garbage, slow, refuse, half")
    p.add_argument("--quirks", default="", metavar="NAME=SHARE,...",
                   help="share of miners with broken-JSON quirks: no_multi, missing_comma, "
                        "leading_comma, trailing_comma, newlines, nonfinite, strings; and "
                        "firmware variants: fan_stopped (Antminer, Whatsminer), no_mhs_1m, "
                        "no_status, no_psu_fan, status_documented_only (Whatsminer)")
    p.add_argument("--families", default="", metavar="A,B",
                   help="only these simulator families (default: all installed)")
    p.add_argument("--extra", default="", metavar="JSON",
                   help="family-specific options as a JSON object, e.g. "
                        '\'{"power": {"speed": 5}, "meters": [{"serial_number": "32297700-17", '
                        '"device_model": "230", "address": 1, "measures": '
                        '["127.77.0.1-127.77.0.50"], "current_ratio": 100}]}\': the miners\' '
                        "draw at 5× the firmware's pace, a meter that measures 50 of them "
                        "(plugins/inputs/mercury/README.md)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="a simulated farm and the agent with its web UI")
    p.add_argument("--miners", type=int, default=60, metavar="N")
    p.add_argument("--listen", default="127.0.0.1:8000", metavar="HOST:PORT")
    p.add_argument("--state-dir", default="", metavar="DIR",
                   help="where the demo's config and state go (default: a new temp folder)")
    p.set_defaults(func=cmd_demo)

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
