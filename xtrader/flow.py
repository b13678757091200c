"""In-flight window of a producer: at most `max_inflight` batches unacknowledged downstream.

`Window` is the pure accounting; `FlowGate` is its asyncio face. Policy
`block` makes the producer wait for a slot (it stops reading: nothing lost);
`lossy` drops the batch instead and counts its rows. A batch marked
`precious` (a REST book snapshot) always waits, whatever the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal

Policy = Literal["block", "lossy"]
Admit = Literal["send", "wait", "drop"]


@dataclass
class FlowStats:
    """Counters of one window; `high_water` is the largest in-flight count seen."""

    inflight: int = 0
    high_water: int = 0
    sent_batches: int = 0
    acked_batches: int = 0
    failed_batches: int = 0
    dropped_batches: int = 0
    dropped_rows: int = 0
    waits: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Window:
    """Pure in-flight accounting.

    Args:
        max_inflight: unacknowledged batches allowed (>= 1).
        policy: "block" or "lossy".
        max_rows: also full once this many rows are unacknowledged (None: batches only). A soft bound: a
            batch is let in while fewer rows than this are in flight, however many rows it brings.

    Raises:
        ValueError: max_inflight or max_rows < 1, or an unknown policy.
    """

    def __init__(self, max_inflight: int = 4, policy: Policy = "block", max_rows: int | None = None) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        if max_rows is not None and max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        if policy not in ("block", "lossy"):
            raise ValueError(f"flow policy must be 'block' or 'lossy', got {policy!r}")
        self.max_inflight = max_inflight
        self.max_rows = max_rows
        self.policy: Policy = policy
        self.stats = FlowStats()
        #: rows of the batches in flight
        self.inflight_rows = 0

    @property
    def full(self) -> bool:
        if self.stats.inflight >= self.max_inflight:
            return True
        return self.max_rows is not None and self.inflight_rows >= self.max_rows

    def admit(self, rows: int, precious: bool = False) -> Admit:
        """Decide the fate of a batch of `rows` rows: send now, wait for a slot, or drop it (counted)."""
        if not self.full:
            return "send"
        if self.policy == "lossy" and not precious:
            self.stats.dropped_batches += 1
            self.stats.dropped_rows += rows
            return "drop"
        self.stats.waits += 1
        return "wait"

    def sent(self, rows: int = 0) -> None:
        """A batch of `rows` rows went out: it occupies a slot until `acked`."""
        stats = self.stats
        stats.inflight += 1
        self.inflight_rows += rows
        stats.sent_batches += 1
        stats.high_water = max(stats.high_water, stats.inflight)

    def acked(self, ok: bool = True, rows: int = 0) -> None:
        """Downstream acknowledged (or failed) a batch of `rows` rows: its slot is free."""
        if self.stats.inflight <= 0:
            raise RuntimeError("acked() without a batch in flight")
        self.stats.inflight -= 1
        self.inflight_rows -= rows
        if ok:
            self.stats.acked_batches += 1
        else:
            self.stats.failed_batches += 1


class FlowGate:
    """`Window` for asyncio: `await acquire(rows)` before sending, `release(ok, rows)` on the ack.

    First come, first served: a freed slot goes to the batch that waited longest, never to one that
    arrives after it (slots are handed over in `release`, so a newcomer finds the window still full).
    """

    def __init__(self, max_inflight: int = 4, policy: Policy = "block", max_rows: int | None = None) -> None:
        self.window = Window(max_inflight, policy, max_rows)
        #: (the waiter, its batch's rows), longest waiting first
        self._waiters: deque[tuple[asyncio.Future[None], int]] = deque()
        self._idle: list[asyncio.Future[None]] = []

    @property
    def stats(self) -> FlowStats:
        return self.window.stats

    @property
    def waiting(self) -> int:
        """Batches waiting for a slot."""
        return sum(1 for waiter, _ in self._waiters if not waiter.done())

    @property
    def pending(self) -> int:
        """Batches not yet acknowledged: in flight, or waiting for a slot."""
        return self.window.stats.inflight + self.waiting

    async def acquire(self, rows: int, precious: bool = False) -> bool:
        """Take a slot for a batch; False when the lossy policy dropped it (already counted)."""
        window = self.window
        verdict = window.admit(rows, precious)
        if verdict == "drop":
            return False
        if verdict == "send":
            window.sent(rows)
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (waiter, rows)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(rows=rows)  # the slot was handed over as the wait was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
            raise
        return True

    def release(self, ok: bool = True, rows: int = 0) -> None:
        """Free the slot of an acknowledged (or failed) batch of `rows` rows (the rows it was acquired
        with): it goes to the longest waiter, if any."""
        self.window.acked(ok, rows)
        while self._waiters and not self.window.full:
            waiter, waiter_rows = self._waiters.popleft()
            if not waiter.done():
                self.window.sent(waiter_rows)
                waiter.set_result(None)
        if self.window.stats.inflight == 0:
            idle, self._idle = self._idle, []
            for future in idle:
                if not future.done():
                    future.set_result(None)

    async def drain(self) -> None:
        """Wait until no batch is in flight."""
        while self.window.stats.inflight:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(future)
            await future
