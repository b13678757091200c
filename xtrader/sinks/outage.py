"""A storage outage injected into a running sink (`xtrader demo --chaos questdb_down_s=D@T,parquet_unwritable_s=D@T`).

While it lasts, the sink's storage calls fail the way the real fault makes them fail, at the one seam
where the sink touches its storage: the Parquet writer's row-group writes and publishes raise
`OSError(EROFS)` (the table tree is read-only; the write-ahead log, like a `wal_dir` on another
volume, still takes the data), and the QuestDB sink's sends raise the client's socket error (QuestDB
unreachable; the spill takes the data). Everything above the seam (retries, the log or spill, the
`events` rows, the replay once the outage is over) is the sink's ordinary code.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Outage:
    """Whether an injected outage is on now; `start(duration_s)` begins (or extends) one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until = 0.0
        self.started = 0

    def start(self, duration_s: float) -> None:
        self.until = max(self.until, self.clock() + duration_s)
        self.started += 1

    @property
    def active(self) -> bool:
        return self.clock() < self.until


__all__ = ["Outage"]
