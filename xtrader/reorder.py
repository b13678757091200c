"""Each producer's items in the order it numbered them, whatever order they arrive in.

Ray does not keep the call order of an async actor's methods (a call whose arguments are still
being fetched is overtaken by a later one), and a producer's own awaits may let a later batch
leave first. A producer numbers its batches to one consumer 0, 1, 2, ... (per incarnation: its
`source` id); the consumer pushes each arrival here and processes what comes out, in order.

An item whose predecessor does not come within `timeout_ns` (a call lost with a crashed actor, a
consumer that restarted mid-stream) is released anyway, in order, and the missing numbers are
counted as `skipped`; one that arrives after its turn passed is released at once and counted as
`late`. A producer that drops a numbered item (lossy flow control) says so with `skipped`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

#: how long an item waits for its predecessors before it is released anyway
TIMEOUT_S = 5.0
#: the most items held for one source before the oldest are released anyway
LIMIT = 4096


@dataclass
class ReorderStats:
    """`held`: arrived before their turn (out of order); `skipped`: numbers never received in time (or
    dropped by the producer); `late`: arrived after their turn had passed; `waiting`: held now."""

    held: int = 0
    skipped: int = 0
    late: int = 0
    waiting: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Source:
    next: int = 0
    held: dict[int, tuple[int, object]] = field(default_factory=dict)  # seq -> (arrival ns, item)
    dropped: set[int] = field(default_factory=set)  # numbers the producer will never send


class Reorder(Generic[T]):
    """Per-source reorder buffer by sequence number.

    Args:
        timeout_ns: the longest an item waits for a missing predecessor.
        limit: the most items held per source (beyond it the oldest are released).
    """

    def __init__(self, timeout_ns: int = int(TIMEOUT_S * 1e9), limit: int = LIMIT) -> None:
        self.timeout_ns = timeout_ns
        self.limit = limit
        self.sources: dict[str, _Source] = {}
        self.stats = ReorderStats()

    def push(
        self, source: str, seq: int, item: T, now_ns: int, dropped: tuple[int, ...] = (), floor: int = 0
    ) -> list[T]:
        """Record an arrival; the items now due, in order (possibly none, possibly several).

        `floor`: the producer says every number below it was acknowledged (by this consumer or an earlier
        incarnation of it): a restarted consumer starts there instead of waiting for them.
        """
        state = self.sources.setdefault(source, _Source())
        if floor > state.next:
            state.dropped = {n for n in state.dropped if n >= floor}
            state.next = floor
        for number in dropped:
            if number >= state.next:
                state.dropped.add(number)
        if seq < state.next:
            self.stats.late += 1
            return [item]
        if seq in state.held:  # a repeated call (a retry): the first copy stands
            return self._due(state)
        state.held[seq] = (now_ns, item)
        if seq != state.next:
            self.stats.held += 1
        out = self._due(state)
        if len(state.held) > self.limit:
            out.extend(self._release_oldest(state))
        self._count_waiting()
        return out

    def expired(self, now_ns: int) -> list[T]:
        """Items whose predecessors did not come within the timeout, and what follows them, in order."""
        out: list[T] = []
        for state in self.sources.values():
            while state.held and now_ns - min(arrived for arrived, _ in state.held.values()) >= self.timeout_ns:
                out.extend(self._release_oldest(state))
        self._count_waiting()
        return out

    def flush(self) -> list[T]:
        """Everything held, in order per source (at the end of a stream)."""
        out: list[T] = []
        for state in self.sources.values():
            while state.held:
                out.extend(self._release_oldest(state))
        self._count_waiting()
        return out

    def oldest_ns(self) -> int | None:
        """When the longest-waiting held item arrived (None when nothing waits)."""
        times = [arrived for state in self.sources.values() for arrived, _ in state.held.values()]
        return min(times, default=None)

    def _due(self, state: _Source) -> list[T]:
        out: list[T] = []
        while True:
            if state.next in state.dropped:
                state.dropped.discard(state.next)
                self.stats.skipped += 1
            elif state.next in state.held:
                _, item = state.held.pop(state.next)
                out.append(item)  # type: ignore[arg-type]
            else:
                return out
            state.next += 1

    def _release_oldest(self, state: _Source) -> list[T]:
        """Give up on the numbers missing before the lowest held one; release from there."""
        lowest = min(state.held)
        self.stats.skipped += lowest - state.next  # dropped by the producer or never received
        state.dropped = {n for n in state.dropped if n > lowest}
        state.next = lowest
        return self._due(state)

    def _count_waiting(self) -> None:
        self.stats.waiting = sum(len(state.held) for state in self.sources.values())


__all__ = ["LIMIT", "TIMEOUT_S", "Reorder", "ReorderStats"]
