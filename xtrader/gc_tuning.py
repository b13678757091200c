"""Garbage-collector settings for a process whose hot loop is decode -> append -> flush.

Why: CPython runs a generation-0 collection every 700 net container allocations
(gc.get_threshold()[0]), and decoding one frame allocates a few dicts and lists, so a
collection runs every few hundred frames. The hot loop makes no reference cycles
(frames decode to trees, column buffers hold strings and numbers), so these
collections free nothing; they cost time, and each generation-2 collection also walks
everything the process keeps, imports included. `tune_gc()` is called once, after
start-up: it moves the objects alive at that point out of the collector's sight
(`gc.freeze()`) and makes generation-0 collections rarer. Cycles are still collected,
only less often.
"""

from __future__ import annotations

import gc

#: generation-0 threshold while capturing (CPython's default is 700)
GEN0_THRESHOLD = 50_000


def tune_gc(gen0_threshold: int = GEN0_THRESHOLD) -> tuple[int, int, int]:
    """Collect once, freeze what survives, then raise the generation-0 threshold.

    Args:
        gen0_threshold: net container allocations between generation-0 collections.

    Returns:
        The previous thresholds, for `restore_gc`.
    """
    previous: tuple[int, int, int] = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, previous[1], previous[2])
    return previous


def restore_gc(previous: tuple[int, int, int]) -> None:
    """Undo `tune_gc`: the previous thresholds, and frozen objects tracked again."""
    gc.set_threshold(*previous)
    gc.unfreeze()
