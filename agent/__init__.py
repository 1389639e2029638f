"""WebboMonitor's core: plugins, config, the loop, metrics. It knows no device."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("webbo")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
