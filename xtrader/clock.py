"""Receipt clocks: taken once when a frame arrives, passed to parsers, never read inside them.

Code latency (receipt -> book, receipt -> sink write) is measured on the monotonic
clock, never as wall - wall: the wall clock may be stepped (NTP) while a batch is
in flight. Monotonic readings are comparable only on one host (one boot), and a
batch may cross nodes of a Ray cluster. So every flushed batch carries an `Anchor`:
the producer's host id and both of its clocks, read together at the flush. A
consumer on the same host computes, per row,

    code latency = (its monotonic now - anchor.mono_ns) + (anchor.wall_ns - row receive_ts)

i.e. monotonic time from the flush on, plus the row's wait in the producer's buffer
(at most a batch age, both ends read on the producer's host within milliseconds).
A consumer on another host does not record a code latency for the batch (it counts
the rows it skipped): there is no honest way to subtract two hosts' monotonic clocks.
Wall - exchange time stays the separate "overall" latency.
"""

from __future__ import annotations

import functools
import socket
import time
from typing import Any, NamedTuple


class Receipt(NamedTuple):
    """Both clocks at the moment a frame was received.

    Attributes:
        wall_ns: `time.time_ns()`, UTC epoch nanoseconds (stored as receive_ts).
        mono_ns: `time.perf_counter_ns()`, for code latency inside one process.
    """

    wall_ns: int
    mono_ns: int


_tuple_new = tuple.__new__


def now() -> Receipt:
    """Take both clocks now (the connector calls this once per frame).

    Built with `tuple.__new__`, skipping the NamedTuple's Python-level `__new__`: the same Receipt for about
    0.26 against 0.35 µs a call here (`python benchmarks/per_batch.py`, both in one process after warm-up)."""
    return _tuple_new(Receipt, (time.time_ns(), time.perf_counter_ns()))


python_now = now

try:  # the same two clocks from C (xtrader/_clock.c); `python -m timeit` of each, README "Performance choices"
    from xtrader import _clock
except ImportError:  # not built: the Python version above
    pass
else:
    _clock.set_type(Receipt)
    now = _clock.now


class Anchor(NamedTuple):
    """Both clocks of a producer's host, read together when it flushed a batch (see the module docstring)."""

    host: str
    wall_ns: int
    mono_ns: int


@functools.cache
def host_id() -> str:
    """This host's monotonic-clock domain: the Linux boot id (the clock restarts with each boot), else the name."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f"{socket.gethostname()}/{f.read().strip()}"
    except OSError:
        return socket.gethostname()


def anchor(receipt: Receipt) -> Anchor:
    """The anchor of a batch flushed at `receipt`."""
    return Anchor(host_id(), receipt.wall_ns, receipt.mono_ns)


def code_latency_ns(receive_ts: Any, batch_anchor: Anchor | None, mono_now_ns: int) -> Any:
    """Per-row receipt -> now on the monotonic clock (numpy int64 array), or None when not comparable
    (no anchor, or the batch was flushed on another host)."""
    if batch_anchor is None or batch_anchor.host != host_id():
        return None
    return (mono_now_ns - batch_anchor.mono_ns) + (batch_anchor.wall_ns - receive_ts)


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
