"""Retry policy, pure: `backoff()` delays with a cap and jitter, `classify()` errors, a staleness `Watchdog`.

Nothing here sleeps or reads a clock: callers pass the time in (monotonic
nanoseconds) and do the waiting, so every rule is testable with a fake clock.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Iterator
from typing import Literal

import httpx
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI, WebSocketException

from xtrader.errors import XtraderError

Jitter = Literal["full", "decorrelated", "none"]
Verdict = Literal["retry", "fatal"]

#: handshake HTTP statuses worth retrying (timeouts, rate limits, server errors)
_RETRY_STATUSES = frozenset({408, 425, 429})


def backoff(
    base_s: float = 0.5,
    cap_s: float = 30.0,
    factor: float = 2.0,
    jitter: Jitter = "full",
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Endless delays (seconds) of capped exponential backoff.

    Args:
        base_s: the first (unjittered) delay.
        cap_s: no delay exceeds this.
        factor: growth per attempt.
        jitter: "full" draws uniformly in [0, ceiling] (AWS "full jitter"),
            "decorrelated" draws in [base, 3 x previous delay], "none" yields the ceiling.
        rng: the random source; a seeded one makes the sequence reproducible.

    Raises:
        ValueError: a non-positive base, a cap below the base, or a factor below 1.
    """
    if base_s <= 0 or cap_s < base_s or factor < 1:
        raise ValueError(f"backoff: need 0 < base_s <= cap_s and factor >= 1, got {base_s}, {cap_s}, {factor}")
    draw = (rng or random.Random()).uniform
    ceiling = base_s
    previous = base_s
    while True:
        if jitter == "full":
            yield draw(0.0, ceiling)
        elif jitter == "decorrelated":
            previous = min(cap_s, draw(base_s, previous * 3.0))
            yield previous
        else:
            yield ceiling
        ceiling = min(cap_s, ceiling * factor)


def classify(exc: BaseException) -> Verdict:
    """Whether reconnecting (or refetching) can help after `exc`.

    xtrader errors say so themselves (`terminal`); network failures, timeouts and
    websocket closes are retried; a refused TLS certificate, a bad URI, a
    handshake answered with a client error (other than 408/425/429) and any
    other exception (a bug) are fatal.
    """
    if isinstance(exc, XtraderError):
        return "fatal" if exc.terminal else "retry"
    if isinstance(exc, ssl.SSLCertVerificationError | InvalidURI):
        return "fatal"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return "fatal" if 400 <= status < 500 and status not in _RETRY_STATUSES else "retry"
    if isinstance(exc, InvalidHandshake | WebSocketException | httpx.TransportError):
        return "retry"
    if isinstance(exc, OSError | TimeoutError | EOFError):
        return "retry"
    return "fatal"


class Watchdog:
    """Presumes a link dead after `timeout_s` without a sign of life.

    Args:
        timeout_s: allowed silence in seconds.
        now_ns: monotonic time at start (the link counts as alive then).
    """

    __slots__ = ("last_ns", "timeout_ns")

    def __init__(self, timeout_s: float, now_ns: int = 0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"watchdog: timeout_s must be > 0, got {timeout_s}")
        self.timeout_ns = int(timeout_s * 1e9)
        self.last_ns = now_ns

    def feed(self, now_ns: int) -> None:
        """A sign of life at `now_ns` (called per frame: a comparison, not a call to max())."""
        if now_ns > self.last_ns:  # noqa: PLR1730 (max() is a call per frame: slower)
            self.last_ns = now_ns

    def silent_ns(self, now_ns: int) -> int:
        """Nanoseconds since the last sign of life."""
        return max(0, now_ns - self.last_ns)

    def expired(self, now_ns: int) -> bool:
        return now_ns - self.last_ns >= self.timeout_ns

    def deadline_ns(self) -> int:
        """When the watchdog expires unless fed."""
        return self.last_ns + self.timeout_ns
