"""Errors that cross the boundary between plugins and the agent.

Outputs raise a :class:`WriteError` subclass so the agent can act like a careful InfluxDB client:
retry what may succeed later, split what was too large, drop what the server will never accept.
Device code raises :class:`DeviceError` with a message meant for the operator; it fails that one
device, never the poll or the task.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


class WriteError(Exception):
    """An output could not write a batch."""


class RetryableWriteError(WriteError):
    """Try the same batch again later: timeouts, refused connections, 5xx, 429.

    ``retry_after`` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BatchTooLargeError(WriteError):
    """The server refused the batch for its size (413): split it and write the halves."""


class PermanentWriteError(WriteError):
    """The server will never accept this batch (other 4xx): drop it and log its reason."""


class DeviceError(Exception):
    """One device failed one request or action; the message says what and, where it can, why."""


class OutcomeUnknownError(DeviceError):
    """A write whose effect is unknown (timeout or reset after sending). Never retried blindly."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(status: int, reason: str, retry_after: str | None = None) -> WriteError:
    """Classify a failed HTTP write the way a careful InfluxDB client does.

    * 413: the batch is too large (split it);
    * 429 and 5xx: retry later, honouring Retry-After;
    * 401 and 403: retry later too — it is a credentials problem the operator fixes by a config
      reload, and dropping the buffer meanwhile would lose data for a typo;
    * any other 4xx: the server will never take this batch; drop it and log its reason.
    """
    text = f"HTTP {status}: {reason.strip()[:500]}" if reason else f"HTTP {status}"
    if status == 413:
        return BatchTooLargeError(text)
    if status in (401, 403, 408, 429) or status >= 500:
        return RetryableWriteError(text, parse_retry_after(retry_after))
    return PermanentWriteError(text)
