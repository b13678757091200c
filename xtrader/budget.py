"""Request budgets and pacers, pure: every venue limit xtrader must stay under, with an injected clock.

Nothing here sleeps or reads a clock: callers pass monotonic nanoseconds in and do
the waiting, so each rule is testable with a fake clock (tests/unit/test_budget.py
drives a book that never becomes valid through 10 minutes of fake time).

- `Window`: at most `limit` units in any `window_s` (sliding). Used for the
  Binance inbound control-message limit (5/s spot, 10/s USD-M: `Venue.control_pacer`)
  and OKX's 480 subscribe/unsubscribe/login requests per connection per hour
  (`Venue.request_budget`; one per `xtrader.session.Session`, i.e. per connection).
- `Credits`: a token bucket (Deribit's credit pools).
- `WeightBudget`: Binance REST weight per IP per minute. The venue's
  `X-MBX-USED-WEIGHT-1M` response header is the IP's whole usage, so `observe()`
  raises the local count to it. `shared_weight(host, limit)` returns ONE budget per
  host for the whole process (every connector and fetcher of that host shares it),
  and a 429 / 418 pause set on it holds back every fetch of that host.
  Across processes (Ray actors on one node) nothing is shared but the header: each
  process learns the others' usage from the header of its own next response, one
  request late. That lag is covered by `WEIGHT_HEADROOM` (each process plans with
  90 % of the limit) and by the shared 429 pause; it is a documented limitation,
  not a lock (a file lock across actors would serialise every snapshot on a node).
- `Backoff`: per-key (per symbol) capped exponential delays with full jitter.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_NS = 1_000_000_000

#: fraction of a venue's published REST weight limit this process plans with (see the module docstring)
WEIGHT_HEADROOM = 0.9


class Window:
    """At most `limit` units per sliding `window_s` (e.g. 480 requests per hour).

    `reserve()` books the earliest slot that keeps the limit and returns how long to
    wait for it; booked slots are in order, so concurrent callers are served FIFO.
    """

    __slots__ = ("_times", "limit", "used_total", "window_ns")

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"window: need limit >= 1 and window_s > 0, got {limit}, {window_s}")
        self.limit = limit
        self.window_ns = int(window_s * _NS)
        self._times: deque[int] = deque()
        self.used_total = 0

    def _expire(self, now_ns: int) -> None:
        times = self._times
        while times and times[0] <= now_ns - self.window_ns:
            times.popleft()

    def used(self, now_ns: int) -> int:
        """Units spent in the window ending now (booked future slots included)."""
        self._expire(now_ns)
        return len(self._times)

    def wait_ns(self, now_ns: int, cost: int = 1) -> int:
        """How long until `cost` units fit (0: now), without booking them."""
        if cost > self.limit:
            raise ValueError(f"window: a cost of {cost} never fits a limit of {self.limit}")
        self._expire(now_ns)
        times = self._times
        at = now_ns
        if times:
            at = max(at, times[-1])  # FIFO: never before a slot already booked
        over = len(times) + cost - self.limit
        if over > 0:
            at = max(at, times[over - 1] + self.window_ns)
        return at - now_ns

    def reserve(self, now_ns: int, cost: int = 1) -> int:
        """Book `cost` units at the earliest slot allowed; returns the wait (ns) until that slot."""
        wait = self.wait_ns(now_ns, cost)
        self._times.extend([now_ns + wait] * cost)
        self.used_total += cost
        return wait

    def remaining(self, now_ns: int) -> int:
        """Units that may still be spent now."""
        return max(0, self.limit - self.used(now_ns))


class Credits:
    """A token bucket: `pool` credits, refilled at `refill_per_s`; a request costs some of them."""

    __slots__ = ("_at_ns", "_credits", "pool", "refill_per_s", "used_total")

    def __init__(self, pool: float, refill_per_s: float) -> None:
        if pool <= 0 or refill_per_s <= 0:
            raise ValueError(f"credits: need pool > 0 and refill_per_s > 0, got {pool}, {refill_per_s}")
        self.pool = float(pool)
        self.refill_per_s = float(refill_per_s)
        self._credits = float(pool)
        self._at_ns: int | None = None
        self.used_total = 0.0

    def _refill(self, now_ns: int) -> None:
        if self._at_ns is not None and now_ns > self._at_ns:
            self._credits = min(self.pool, self._credits + (now_ns - self._at_ns) / _NS * self.refill_per_s)
        if self._at_ns is None or now_ns > self._at_ns:
            self._at_ns = now_ns

    def wait_ns(self, now_ns: int, cost: float) -> int:
        if cost > self.pool:
            raise ValueError(f"credits: a cost of {cost} never fits a pool of {self.pool}")
        self._refill(now_ns)
        at = max(now_ns, self._at_ns or now_ns)
        short = cost - self._credits
        return (at - now_ns) + (0 if short <= 0 else int(short / self.refill_per_s * _NS) + 1)

    def reserve(self, now_ns: int, cost: float) -> int:
        """Spend `cost` credits (possibly ahead of time); returns the wait (ns) until they are there."""
        wait = self.wait_ns(now_ns, cost)
        if wait > 0:  # the credits are spent at now + wait: move the bucket there
            self._refill(now_ns + wait)
        self._credits -= cost
        self.used_total += cost
        return wait

    def drain(self, now_ns: int) -> None:
        """The venue says the credits are gone (Deribit 10028): start again from an empty pool."""
        self._refill(now_ns)
        self._credits = 0.0


class WeightBudget:
    """REST request weight per minute of one host (Binance: per IP), shared by every fetcher of the process.

    Args:
        limit: the venue's published weight per minute; the budget plans with `headroom` of it.
    """

    def __init__(self, limit: int, headroom: float = WEIGHT_HEADROOM, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window = Window(max(1, int(limit * headroom)), window_s)
        self.paused_until_ns = 0  # a 429 / 418 holds every request of the host until then
        self.waits = 0  # times a request had to wait for weight (the metric behind the events rows)

    def reserve(self, now_ns: int, weight: int) -> int:
        """Book `weight` for one request; returns how long (ns) it must wait (a pause, or the budget)."""
        pause = max(0, self.paused_until_ns - now_ns)
        wait = self.window.reserve(now_ns + pause, min(weight, self.window.limit)) + pause
        if wait > 0:
            self.waits += 1
        return wait

    def observe(self, now_ns: int, used: int) -> None:
        """The venue's count of the weight used this minute (the header): others on the IP spent it too."""
        known = self.window.used(now_ns)
        if used > known:
            extra = min(used - known, self.window.limit)
            self.window._times.extend([now_ns] * extra)
            self.window._times = deque(sorted(self.window._times))

    def pause(self, now_ns: int, seconds: float) -> None:
        """HTTP 429 / 418: no request of this host before now + seconds."""
        self.paused_until_ns = max(self.paused_until_ns, now_ns + int(seconds * _NS))


_WEIGHTS: dict[str, WeightBudget] = {}


def shared_weight(url: str, limit: int) -> WeightBudget:
    """The process-wide weight budget of `url`'s host (created with `limit` on first use)."""
    host = urlsplit(url).netloc or url
    budget = _WEIGHTS.get(host)
    if budget is None:
        budget = _WEIGHTS[host] = WeightBudget(limit)
    return budget


def reset_shared() -> None:
    """Forget every shared budget (tests)."""
    _WEIGHTS.clear()


@dataclass
class Backoff:
    """Capped exponential delays with jitter, per key (a symbol): attempt n waits U(c/2, c) with
    c = min(cap, base * 2^n), never less than `floor_s` ("equal jitter": spread, yet growing)."""

    base_s: float = 5.0
    cap_s: float = 300.0
    floor_s: float = 1.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: dict[str, int] = field(default_factory=dict)

    def next_ns(self, key: str) -> int:
        """The delay before `key`'s next attempt (each call counts one attempt)."""
        n = self.attempts.get(key, 0)
        self.attempts[key] = n + 1
        ceiling = min(self.cap_s, self.base_s * (2.0 ** min(n, 60)))
        return int(max(self.floor_s, self.rng.uniform(ceiling / 2, ceiling)) * _NS)

    def reset(self, key: str) -> None:
        """`key` succeeded: its next failure starts from the base again."""
        self.attempts.pop(key, None)


__all__ = ["WEIGHT_HEADROOM", "Backoff", "Credits", "WeightBudget", "Window", "reset_shared", "shared_weight"]
