"""``webbo alerts``: what fires, and silences for maintenance, from a shell on the agent's host.

It needs no running web server and no API key, only the state folder: active alerts are read
from ``alerts.json`` (the engine writes it as they change), silences go to
``alert-silences.json``, which the running agent re-reads when it changes::

    webbo alerts list [--json]
    webbo alerts silence (--rule R | --group G | --range R | --mac M | --meter S)... --for 2h
                         [--comment TEXT]
    webbo alerts silences [--all] [--json]
    webbo alerts unsilence ID
    webbo alerts test CHANNEL           send a test message through a configured channel
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from typing import Any

import msgspec

from webbo.agent.alerts.config import AlertsSection
from webbo.agent.alerts.engine import STATE_FILE
from webbo.agent.alerts.messages import test_message
from webbo.agent.alerts.notify import Channel
from webbo.agent.alerts.silences import SilenceError, SilenceStore, make_silence
from webbo.agent.alerts.state import SavedState
from webbo.agent.core.config import Config, Duration

__all__ = ["add_parser", "run"]


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def cmd_list(config: Config, args: argparse.Namespace) -> int:
    path = config.state_dir / STATE_FILE
    try:
        saved = msgspec.json.decode(path.read_bytes(), type=SavedState)
    except FileNotFoundError:
        saved = SavedState()
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        print(f"webbo alerts: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    alerts = [SavedState.unpack(a) for a in saved.alerts]
    if args.json:
        print(json.dumps([a.describe() for a in alerts], ensure_ascii=False, indent=2))
        return 0
    if not alerts:
        print("no active alerts" + (f" (state saved {_when(saved.saved_at)})"
                                    if saved.saved_at else ""))
        return 0
    for a in sorted(alerts, key=lambda a: (a.status != "firing", a.rule, a.key)):
        where = " / ".join(x for x in (a.labels.get("group"), a.labels.get("range")) if x)
        who = a.labels.get("ip") or a.labels.get("name") or ""
        value = "" if a.value is None else f"  value {a.value:g}"
        silenced = f"  SILENCED ({a.silenced_by})" if a.silenced_by else ""
        print(f"{a.status:8} {a.severity:8} {a.rule:24} {a.key} {who} {where}"
              f"  since {_when(a.fired_at or a.since)}{value}{silenced}")
    return 0


def cmd_silence(config: Config, args: argparse.Namespace) -> int:
    try:
        until = time.time() + Duration.parse(args.duration)
        silence = make_silence(ends_at=until, created_by=f"cli:{getpass.getuser()}",
                               comment=args.comment or "", rules=args.rule, groups=args.group,
                               ranges=args.range, macs=args.mac, meters=args.meter)
    except (SilenceError, ValueError) as exc:
        print(f"webbo alerts silence: {exc}", file=sys.stderr)
        return 2
    SilenceStore(config.state_dir).add(silence)
    print(f"silence {silence.id} until {_when(silence.ends_at)}")
    return 0


def cmd_silences(config: Config, args: argparse.Namespace) -> int:
    now = time.time()
    items = [s for s in SilenceStore(config.state_dir).all() if args.all or s.active(now)]
    if args.json:
        print(json.dumps([s.describe(now) for s in items], ensure_ascii=False, indent=2))
        return 0
    if not items:
        print("no silences")
    for s in items:
        what = "; ".join(f"{k} {', '.join(v)}" for k, v in (
            ("rules", s.rules), ("groups", s.groups), ("ranges", s.ranges), ("macs", s.macs),
            ("meters", s.meters)) if v)
        state = "until" if s.active(now) else "ENDED"
        print(f"{s.id}  {state} {_when(s.ends_at)}  {what}  by {s.created_by}"
              + (f"  — {s.comment}" if s.comment else ""))
    return 0


def cmd_unsilence(config: Config, args: argparse.Namespace) -> int:
    if not SilenceStore(config.state_dir).expire(args.id):
        print(f"webbo alerts unsilence: no silence with id {args.id}", file=sys.stderr)
        return 1
    print(f"silence {args.id} ended")
    return 0


def cmd_test(config: Config, args: argparse.Namespace) -> int:
    section = config.section(AlertsSection)
    found = [c for c in section.channels if c.name == args.channel]
    if not found:
        names = ", ".join(c.name for c in section.channels) or "none is configured"
        print(f"webbo alerts test: no channel named {args.channel!r} ({names})", file=sys.stderr)
        return 2

    async def send() -> tuple[bool, str]:
        channel = Channel(found[0], section)
        ok = await channel.deliver(test_message(args.channel, section.language, time.time()))
        return ok, channel.stats.last_error

    ok, error = asyncio.run(send())
    print(f"{args.channel}: sent" if ok else f"{args.channel}: NOT sent: {error}")
    return 0 if ok else 1


COMMANDS: dict[str, Any] = {"list": cmd_list, "silence": cmd_silence, "silences": cmd_silences,
                            "unsilence": cmd_unsilence, "test": cmd_test}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "alerts", help="active alerts, silences for maintenance, a channel test")
    alerts_sub = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND")
    listing = alerts_sub.add_parser("list", help="pending and firing alerts")
    listing.add_argument("--json", action="store_true")
    silence = alerts_sub.add_parser("silence", help="hold back the messages of matching alerts")
    for flag, text in (("--rule", "a rule's name"), ("--group", "a group (room), name or uuid"),
                       ("--range", "a range (rack), name or uuid"), ("--mac", "a miner's MAC"),
                       ("--meter", "a meter's serial number")):
        silence.add_argument(flag, action="append", default=[], help=text + " (repeatable)")
    silence.add_argument("--for", dest="duration", default="2h", metavar="DURATION",
                         help="how long, e.g. 90m, 2h, 1d (default 2h)")
    silence.add_argument("--comment", default="")
    silences = alerts_sub.add_parser("silences", help="list silences")
    silences.add_argument("--all", action="store_true", help="also those ended within a day")
    silences.add_argument("--json", action="store_true")
    unsilence = alerts_sub.add_parser("unsilence", help="end a silence now")
    unsilence.add_argument("id")
    test = alerts_sub.add_parser("test", help="send a test message through a channel")
    test.add_argument("channel")
    for parser in (p, listing, silence, silences, unsilence, test):
        parser.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS,
                            help="config file (default: $WEBBO_CONFIG, ./webbo.toml, "
                                 "/etc/webbo/webbo.toml)")
    return p


def run(config: Config, args: argparse.Namespace) -> int:
    command = COMMANDS.get(getattr(args, "alerts_command", None) or "list")
    assert command is not None
    return int(command(config, args))
