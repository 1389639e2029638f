"""``webbo status``: the running agent's state, read from the status file it keeps.

The agent rewrites ``<state_dir>/status.json`` (0600) every few seconds; reading it needs no
network, no API key and no running web server, only read access to the state folder (root, or
the ``webbo`` user). A file older than three intervals means the agent is not running (or hung).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATE_WORDS = {"ok": "working", "new": "new", "unreachable": "failing (no answer)",
               "timeout": "timed out", "error": "failing (error)",
               "unrecognised": "answering, not recognised", "silent": "silent",
               "pending": "not visited yet"}
"""How each address state reads in ``webbo status``."""


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _output_lines(item: dict[str, Any], now: float) -> list[str]:
    """One output: written, buffered (in memory, or on disk with its size and age), dropped;
    why it fails; and a loud line while its buffer overflows."""
    if item.get("buffer") == "disk":
        buffer = (f"disk buffer {item.get('buffer_size', 0)} metrics, "
                  f"{_mb(item.get('buffer_bytes', 0))} of {_mb(item.get('buffer_max_bytes', 0))}")
    else:
        buffer = f"buffer {item.get('buffer_size', 0)}/{item.get('buffer_limit', 0)}"
    line = (f"  {item.get('label', item.get('name'))}: {item.get('metrics_written', 0)} "
            f"written, {buffer}, {item.get('metrics_dropped', 0)} dropped, "
            f"{item.get('write_errors', 0)} write errors")
    oldest = float(item.get("buffer_oldest_s") or 0)
    if item.get("buffer_size") and oldest >= 60:
        line += f", oldest waiting {_age(oldest)}"
    if item.get("last_error") and item.get("buffer_size"):
        line += f"  (failing: {item['last_error']})"
    lines = [line]
    if item.get("dropping"):
        since = float(item.get("dropping_since") or now)
        lines.append(f"    DROPPING: buffer full for {_age(now - since)}, "
                     f"{item.get('dropped_in_overflow', 0)} metrics dropped so far (see "
                     "docs/deploy.md for sizing the buffer)")
    if item.get("buffer_error"):
        lines.append(f"    disk buffer problem: {item['buffer_error']}")
    return lines


def _mb(count: Any) -> str:
    return f"{int(count or 0) / 1e6:.1f} MB"


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def render(status: dict[str, Any] | None, state_dir: Path, now: float | None = None
           ) -> tuple[str, int]:
    """Human-readable status and the exit code: 0 running, 1 not running or stale."""
    if status is None:
        return f"not running (no status in {state_dir})", 1
    now = time.time() if now is None else now
    age = now - float(status.get("written_at", 0))
    stale_after = 3 * max(10.0, float(status.get("interval_s", 10)))
    pid = int(status.get("pid", 0))
    running = _alive(pid) and age < stale_after
    lines = [
        f"agent: {'running' if running else 'NOT running'} (pid {pid}, status {age:.0f}s old)",
        f"config: {status.get('config')}  reloads: {status.get('reloads', 0)}",
    ]
    if status.get("reload_error"):
        lines.append(f"last reload REFUSED: {status['reload_error']}")
    lines.append("inputs:")
    for item in status.get("inputs", []):
        line = (f"  {item.get('label', item.get('name'))}: {item.get('gathers', 0)} gathers, "
                f"{item.get('gather_errors', 0)} errors, {item.get('metrics_gathered', 0)} "
                f"metrics, last {item.get('gather_time_s', 0):.2f}s")
        if item.get("last_error"):
            line += f"  (last error: {item['last_error']})"
        lines.append(line)
    lines.append("outputs:")
    for item in status.get("outputs", []):
        lines.extend(_output_lines(item, now))
    miners = status.get("miners")
    if isinstance(miners, dict):
        lines.append(f"miners: {miners.get('devices', 0)} known; "
                     f"{miners.get('addresses', 0)} addresses in the ranges:")
        by_state = miners.get("addresses_by_state") or {}
        lines.append("  " + ", ".join(f"{STATE_WORDS.get(k, k)} {v}"
                                      for k, v in by_state.items() if v) or "  (none)")
        if miners.get("problem"):
            lines.append(f"  NOT SWEPT: {miners['problem']}")
    alerts = status.get("alerts")
    if isinstance(alerts, dict) and alerts.get("enabled", True):
        line = (f"alerts: {alerts.get('firing', 0)} firing ({alerts.get('silenced', 0)} "
                f"silenced), {alerts.get('pending', 0)} pending; {alerts.get('rules', 0)} rules, "
                f"{alerts.get('silences', 0)} silences, {alerts.get('messages', 0)} messages")
        lines.append(line)
        for channel in alerts.get("channels", []):
            state = "ok" if channel.get("healthy") else f"FAILING: {channel.get('last_error')}"
            lines.append(f"  channel {channel.get('name')}: {channel.get('sent', 0)} sent, "
                         f"{channel.get('dropped', 0)} dropped, {channel.get('queued', 0)} "
                         f"queued — {state}")
    lines.extend(_power_lines(status.get("power")))
    for name, value in status.items():
        if name.startswith("meters") and isinstance(value, dict):
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in value.items()
                                                if not isinstance(v, dict | list)))
    return "\n".join(lines), 0 if running else 1


def _kw(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}"


def _power_lines(power: Any) -> list[str]:
    """Power control: each feed's state, measured draw and budget (a held feed says why)."""
    if not isinstance(power, dict) or not power.get("feeds"):
        return []
    lines = [f"power ({power.get('mode')}): {power.get('steps_sent', 0)} steps sent, "
             f"{power.get('steps_running', 0)} running"]
    for name, feed in power["feeds"].items():
        line = (f"  {name}: {feed.get('state')}, {_kw(feed.get('measured_kw'))} kW of "
                f"{_kw(feed.get('budget_kw'))} kW")
        if feed.get("problem"):
            line += f"  ({feed['problem']})"
        lines.append(line)
    return lines
