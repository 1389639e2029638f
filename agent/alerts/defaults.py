"""The default alert rules: the ones the sample webbo.toml ships on (a test keeps the two
equal), and the demo's."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_RULES"]

DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "miner-offline", "condition": "miner_offline", "threshold": 120,
     "severity": "critical"},
    {"name": "miner-failing", "condition": "miner_failing", "for": "5m"},
    {"name": "chip-hot", "condition": "temp_chip_high", "threshold": 95, "for": "2m",
     "severity": "critical"},
    {"name": "board-hot", "condition": "temp_board_high", "threshold": 85, "for": "2m"},
    {"name": "hashrate-low", "condition": "hashrate_low", "threshold": 80, "for": "10m"},
    {"name": "fan-stopped", "condition": "fan_low", "for": "1m", "severity": "critical"},
    {"name": "board-dead", "condition": "board_dead", "for": "5m"},
    {"name": "no-pool", "condition": "pool_none", "for": "5m", "severity": "critical"},
    {"name": "rejected-shares", "condition": "rejected_high", "threshold": 5, "for": "15m"},
    {"name": "rebooted", "condition": "miner_rebooted", "severity": "info"},
    {"name": "work-mode", "condition": "work_mode_mismatch", "for": "10m"},
    {"name": "meter-offline", "condition": "meter_offline", "threshold": 120,
     "severity": "critical"},
    {"name": "voltage", "condition": "voltage_out_of_band", "for": "1m"},
    {"name": "phase-lost", "condition": "phase_lost", "severity": "critical"},
    {"name": "feed-over-budget", "condition": "feed_over_budget", "for": "1m",
     "severity": "critical"},
    {"name": "feed-meter-stale", "condition": "meter_stale", "severity": "critical"},
]
