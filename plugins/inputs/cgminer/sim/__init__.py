"""Simulated cgminer devices (``webbo simulate``): generic cgminer-compatible firmware speaking
RPC on 4028 (Avalon-like and bare), with SSH for reboot. The device: :mod:`.device`."""

from __future__ import annotations

from webbo.plugins.inputs.cgminer.sim.device import start

__all__ = ["start"]
