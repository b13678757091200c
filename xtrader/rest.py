"""REST book snapshots fetched beside the websocket, never in its way.

One asyncio task per symbol asks `venue.snapshot_request()` over a shared
httpx.AsyncClient, at most `concurrency` at a time. Venues that weigh their
REST requests (`Venue.weight_limit`, Binance) take each snapshot's weight from
the process-wide budget of the host (`xtrader.budget.shared_weight`, kept true
by the `X-MBX-USED-WEIGHT-1M` header) before asking: when it is spent, the
fetch waits, with an events row and the `budget_waits` counter, instead of
earning a 429. HTTP 429 and 418 pause every fetch of the host (the limit is per
IP, so every connector of the process waits) for `Retry-After` seconds (418
without one: `ban_wait_s`); transport errors and 5xx retry with backoff; a
4xx is reported and given up. The body goes to `deliver`, which parses it in
stream order (the connector's job); a body that does not parse is refetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass

import httpx

from xtrader.budget import WeightBudget, shared_weight
from xtrader.clock import Receipt, now
from xtrader.retry import Jitter, backoff
from xtrader.venues.base import Venue

#: deliver(symbol, body, receipt) -> True when the snapshot was taken (False: refetch)
Deliver = Callable[[str, bytes, Receipt], Awaitable[bool]]
#: record(kind, detail, symbol): write an events row
RecordEvent = Callable[[str, str, str | None], None]


@dataclass
class RestStats:
    """Counters of the snapshot fetcher."""

    requests: int = 0
    snapshots: int = 0
    throttled: int = 0
    banned: int = 0
    errors: int = 0
    coalesced: int = 0
    used_weight: int = 0
    budget_waits: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def retry_after_s(value: str | None, now_s: float | None = None) -> float | None:
    """The delay a `Retry-After` header asks for: seconds, or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


class SnapshotFetcher:
    """Fetches REST book snapshots of one venue.

    Args:
        venue: gives the request URL per symbol.
        deliver: takes each fetched body (see `Deliver`).
        record: writes events rows (throttling, errors).
        depth: levels asked for (None: the venue's default).
        concurrency: requests in flight at once.
        ssl_context: for https (a simulator's CA); None uses the system's.
        ban_wait_s: pause after HTTP 418 without `Retry-After`.
        transport: an httpx transport replacing the network (tests).
    """

    def __init__(
        self,
        venue: Venue,
        deliver: Deliver,
        record: RecordEvent,
        *,
        depth: int | None = None,
        concurrency: int = 2,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        ban_wait_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        jitter: Jitter = "full",
        rng: random.Random | None = None,
        clock: Callable[[], Receipt] = now,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.venue = venue
        self.depth = depth
        self.stats = RestStats()
        self._deliver = deliver
        self._record = record
        self._slots = asyncio.Semaphore(concurrency)
        self._ban_wait_s = ban_wait_s
        self._backoff_s = (backoff_base_s, backoff_cap_s)
        self._jitter: Jitter = jitter
        self._rng = rng or random.Random()
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._budget: WeightBudget | None = None
        self._resume_at = 0.0  # loop time before which no request goes out (429 / 418; venues without a weight)
        self._client = httpx.AsyncClient(
            verify=ssl_context if ssl_context is not None else True,
            timeout=timeout_s,
            trust_env=False,
            transport=transport,
        )

    def request(self, symbol: str) -> bool:
        """Start fetching `symbol`'s snapshot; False when one is already on its way (coalesced)."""
        task = self._tasks.get(symbol)
        if task is not None and not task.done():
            self.stats.coalesced += 1
            return False
        task = asyncio.get_running_loop().create_task(self._fetch(symbol), name=f"snapshot {symbol}")
        self._tasks[symbol] = task
        task.add_done_callback(lambda t: self._done(symbol, t))
        return True

    def cancel(self, symbol: str) -> bool:
        """Cancel `symbol`'s fetch in flight (its book was dropped); False when none was."""
        task = self._tasks.pop(symbol, None)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def in_flight(self) -> set[str]:
        return {s for s, t in self._tasks.items() if not t.done()}

    def _done(self, symbol: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(symbol) is task:
            del self._tasks[symbol]
        if not task.cancelled() and task.exception() is not None:
            self.stats.errors += 1
            self._record("error", f"snapshot task failed: {task.exception()!r}"[:500], symbol)

    async def aclose(self) -> None:
        """Cancel every fetch and close the HTTP client."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    async def _fetch(self, symbol: str) -> None:
        request = self.venue.snapshot_request(symbol, self.depth)
        if request is None:
            return
        delays = backoff(*self._backoff_s, jitter=self._jitter, rng=self._rng)
        loop = asyncio.get_running_loop()
        weight = self.venue.snapshot_weight(self.depth)
        budget = shared_weight(request.url, self.venue.weight_limit) if weight and self.venue.weight_limit else None
        self._budget = budget
        while True:
            async with self._slots:
                pause = self._resume_at - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                if budget is not None:
                    await self._within_budget(symbol, budget, weight)
                self.stats.requests += 1
                try:
                    response = await self._client.get(request.url)
                except httpx.HTTPError as exc:
                    self.stats.errors += 1
                    self._record("error", f"snapshot request failed: {exc!r}"[:500], symbol)
                    wait = next(delays)
                else:
                    wait_or_done = await self._handle(symbol, response, delays)
                    if wait_or_done is None:
                        return
                    wait = wait_or_done
            await asyncio.sleep(wait)

    async def _within_budget(self, symbol: str, budget: WeightBudget, weight: int) -> None:
        """Wait (saying so) until the host's weight budget has room for this request."""
        wait_ns = budget.reserve(self._clock().mono_ns, weight)
        if wait_ns <= 0:
            return
        self.stats.budget_waits += 1
        used = budget.window.used(self._clock().mono_ns)
        self._record(
            "resync",
            f"snapshot waits {wait_ns / 1e9:.1f} s: REST weight budget of the host spent "
            f"({used} of {budget.window.limit} planned per minute; venue limit {budget.limit})",
            symbol,
        )
        await asyncio.sleep(wait_ns / 1e9)

    async def _handle(self, symbol: str, response: httpx.Response, delays: Iterator[float]) -> float | None:
        """None when done (taken, or given up); else seconds to wait before the next try."""
        receipt = self._clock()
        status = response.status_code
        weight = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if weight is not None and weight.isdigit():
            self.stats.used_weight = int(weight)
            if self._budget is not None:
                self._budget.observe(receipt.mono_ns, int(weight))
        if status == 200:
            if await self._deliver(symbol, response.content, receipt):
                self.stats.snapshots += 1
                return None
            return next(delays)  # the body did not parse: the deliverer recorded the reject
        if status in (418, 429):
            asked = retry_after_s(response.headers.get("Retry-After"))
            if status == 418:
                self.stats.banned += 1
                wait = asked if asked is not None else self._ban_wait_s
            else:
                self.stats.throttled += 1
                wait = asked if asked is not None else next(delays)
            if self._budget is not None:  # per IP: every fetcher of the host waits
                self._budget.pause(receipt.mono_ns, wait)
            else:
                self._resume_at = max(self._resume_at, asyncio.get_running_loop().time() + wait)
            self._record("error", f"snapshot HTTP {status}: every snapshot request waits {wait:g} s", symbol)
            return 0.0  # the pause applies to every fetch, this one included
        self.stats.errors += 1
        self._record("error", f"snapshot HTTP {status}: {response.text[:200]}", symbol)
        if 400 <= status < 500 and status != 408:
            return None  # the request itself is wrong: repeating it cannot help
        return next(delays)
