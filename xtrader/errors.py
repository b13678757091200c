"""The few exceptions of xtrader; each knows whether retrying can help."""

from __future__ import annotations


class XtraderError(Exception):
    """Base class. `terminal` is True when retrying the same thing cannot succeed."""

    terminal: bool = False


class ParseError(XtraderError):
    """A frame or REST body could not be understood. The only exception parsers raise.

    Not terminal: the frame is counted as a reject and the stream goes on.
    """


class ConfigError(XtraderError):
    """The configuration is invalid; the message names the field and the value."""

    terminal = True


class SubscriptionError(XtraderError):
    """The venue refused a subscription (bad symbol or channel): retrying will not help."""

    terminal = True


class ConnectionLost(XtraderError):
    """The websocket closed or went stale; reconnect with backoff."""


class SnapshotError(XtraderError):
    """A REST book snapshot failed (HTTP error, 429, stale); retry with backoff."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
