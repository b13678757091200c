"""`clock.now()`: both receipt clocks, from C when the extension is built, the same clocks as the Python version."""

from __future__ import annotations

import time

from xtrader import clock
from xtrader.clock import Receipt


def test_now_is_built_in_c() -> None:
    # a source tree without `pip install -e .` falls back to Python; CI installs it, so the C clock is what runs
    assert clock.now is not clock.python_now, "xtrader/_clock.c was not built: pip install -e ."


def test_now_reads_the_wall_and_the_monotonic_clock_of_time_time_ns_and_perf_counter_ns() -> None:
    for _ in range(1000):
        wall_before, mono_before = time.time_ns(), time.perf_counter_ns()
        receipt = clock.now()
        wall_after, mono_after = time.time_ns(), time.perf_counter_ns()
        assert type(receipt) is Receipt
        assert type(receipt.wall_ns) is int and type(receipt.mono_ns) is int
        assert wall_before <= receipt.wall_ns <= wall_after
        assert mono_before <= receipt.mono_ns <= mono_after


def test_python_now_is_the_same_receipt() -> None:
    receipt = clock.python_now()
    assert type(receipt) is Receipt and receipt == (receipt.wall_ns, receipt.mono_ns)
