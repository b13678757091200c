"""CPU seconds of a set of processes, by pid (psutil): the consumers' CPU, never the feed's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far (its own threads; not its children)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def used(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds spent between two readings, summed over every pid of `before`.

    A pid missing from `after` (the process ended) counts what it had used at `before` as its last reading,
    so its share in between is lost and the figure is a lower bound.

    Raises:
        ValueError: a reading went backwards (a pid reused by another process).
    """
    total = 0.0
    for pid, start in before.items():
        end = after.get(pid, start)
        if end < start:
            raise ValueError(f"pid {pid}: CPU time went from {start} to {end}: not the same process")
        total += end - start
    return total


class CpuMeter:
    """CPU seconds of `pids` between `start()` and each `stop()`."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = tuple(sorted(set(pids)))
        if not self.pids:
            raise ValueError("no process to measure")
        self._before: dict[int, float] = {}

    def read(self) -> dict[int, float]:
        import psutil

        out = {}
        for pid in self.pids:
            try:
                out[pid] = cpu_seconds(pid)
            except psutil.NoSuchProcess:
                continue
        return out

    def start(self) -> None:
        self._before = self.read()

    def stop(self) -> float:
        return used(self._before, self.read())

    def stop_by_pid(self) -> dict[int, float]:
        """CPU seconds of each pid since `start()` (an ended process: to its last reading at `start()`)."""
        after = self.read()
        return {pid: used({pid: start}, after) for pid, start in self._before.items()}
