"""Receipt clocks: taken once when a frame arrives, passed to parsers, never read inside them."""

from __future__ import annotations

import time
from typing import NamedTuple


class Receipt(NamedTuple):
    """Both clocks at the moment a frame was received.

    Attributes:
        wall_ns: `time.time_ns()`, UTC epoch nanoseconds (stored as receive_ts).
        mono_ns: `time.perf_counter_ns()`, for code latency inside one process.
    """

    wall_ns: int
    mono_ns: int


def now() -> Receipt:
    """Take both clocks now (the connector calls this once per frame)."""
    return Receipt(time.time_ns(), time.perf_counter_ns())


class FakeClock:
    """A deterministic clock for tests: each call advances by `step_ns`."""

    def __init__(self, wall_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000) -> None:
        self.wall_ns = wall_ns
        self.mono_ns = 0
        self.step_ns = step_ns

    def __call__(self) -> Receipt:
        receipt = Receipt(self.wall_ns, self.mono_ns)
        self.wall_ns += self.step_ns
        self.mono_ns += self.step_ns
        return receipt
