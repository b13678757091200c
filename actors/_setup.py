"""What every data actor (connector, arbiter, order book, sink) does first in its constructor."""

from __future__ import annotations

from actors import _wire
from xtrader.memory_pool import use_memory_pool
from xtrader.warmup import warm_up


def set_up_process() -> None:
    """Ready this actor process for data: before its first batch, not while the batch waits."""
    _wire.install()  # RecordBatch arguments travel as Arrow IPC bytes (`actors._wire`)
    use_memory_pool()  # jemalloc for Arrow (`xtrader.memory_pool`)
    warm_up()  # the hot path's one-time costs, before any data (`xtrader.warmup`)


__all__ = ["set_up_process"]
