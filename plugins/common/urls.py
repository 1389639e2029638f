"""URLs in plugin settings, checked the way the config reports problems (key path, reason)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from webbo.agent.plugin import ConfigError

__all__ = ["check_http_urls"]


def check_http_urls(urls: list[str], key: str = "urls") -> Iterator[ConfigError]:
    """Each URL must be http(s)://host[:port][/path]."""
    if not urls:
        yield ConfigError(key, "at least one URL is required")
    for index, url in enumerate(urls):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            yield ConfigError(f"{key}[{index}]", f"not an http(s) URL: {url!r}")
            continue
        if parts.scheme not in ("http", "https") or not parts.hostname:
            yield ConfigError(f"{key}[{index}]", f"not an http(s) URL: {url!r}")
