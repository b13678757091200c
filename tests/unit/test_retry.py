"""retry: backoff delays, error classification, the staleness watchdog (fake clock)."""

from __future__ import annotations

import itertools
import random
import ssl

import httpx
import pytest
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus, InvalidURI
from websockets.http11 import Response

from xtrader.errors import ConfigError, ConnectionLost, ParseError, SnapshotError, SubscriptionError
from xtrader.retry import Watchdog, backoff, classify


def take(delays, n):
    return list(itertools.islice(delays, n))


def test_backoff_without_jitter_doubles_up_to_the_cap():
    assert take(backoff(0.5, 4.0, 2.0, "none"), 6) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_full_jitter_stays_under_the_exponential_ceiling():
    delays = take(backoff(0.1, 2.0, 2.0, "full", random.Random(7)), 50)
    ceilings = [min(2.0, 0.1 * 2**n) for n in range(50)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) > 1.0  # it does grow


def test_decorrelated_jitter_is_bounded_by_base_and_cap():
    delays = take(backoff(0.2, 3.0, 2.0, "decorrelated", random.Random(3)), 200)
    assert all(0.2 <= d <= 3.0 for d in delays)


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_a_seeded_rng_makes_backoff_reproducible(jitter):
    first = take(backoff(0.1, 5.0, 2.0, jitter, random.Random(42)), 20)
    second = take(backoff(0.1, 5.0, 2.0, jitter, random.Random(42)), 20)
    assert first == second
    assert first != take(backoff(0.1, 5.0, 2.0, jitter, random.Random(43)), 20)


@pytest.mark.parametrize(("base", "cap", "factor"), [(0, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_backoff_rejects_nonsense(base, cap, factor):
    with pytest.raises(ValueError, match="backoff"):
        next(backoff(base, cap, factor))


def _status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", Headers()))


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (SubscriptionError("bad symbol"), "fatal"),
        (ConfigError("x"), "fatal"),
        (ParseError("x"), "retry"),
        (ConnectionLost("x"), "retry"),
        (SnapshotError("429", retry_after_s=1.0), "retry"),
        (ConnectionRefusedError(), "retry"),
        (ConnectionResetError(), "retry"),
        (TimeoutError(), "retry"),
        (OSError("network unreachable"), "retry"),
        (ConnectionClosedError(None, None), "retry"),
        (httpx.ConnectError("x"), "retry"),
        (httpx.ReadTimeout("x"), "retry"),
        (_status(503), "retry"),
        (_status(429), "retry"),
        (_status(404), "fatal"),
        (_status(403), "fatal"),
        (InvalidURI("nope://", "scheme"), "fatal"),
        (ssl.SSLCertVerificationError("unknown ca"), "fatal"),
        (TypeError("a bug"), "fatal"),
    ],
)
def test_classify(exc, verdict):
    assert classify(exc) == verdict


S = 1_000_000_000


def test_watchdog_expires_after_the_timeout_of_silence():
    dog = Watchdog(30.0, now_ns=0)
    assert not dog.expired(29 * S)
    assert dog.expired(30 * S)
    dog.feed(25 * S)
    assert not dog.expired(50 * S)
    assert dog.silent_ns(50 * S) == 25 * S
    assert dog.deadline_ns() == 55 * S


def test_watchdog_ignores_time_going_backwards():
    dog = Watchdog(1.0, now_ns=10 * S)
    dog.feed(5 * S)
    assert dog.last_ns == 10 * S
    assert dog.silent_ns(9 * S) == 0


def test_watchdog_rejects_a_zero_timeout():
    with pytest.raises(ValueError, match="timeout_s"):
        Watchdog(0)
