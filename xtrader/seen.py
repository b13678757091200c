"""Which batches of each producer source a sink stored: the idempotence state, and how it is made durable.

Per source (`Seen`): the highest contiguous batch_seq stored (`floor`) plus the sparse set stored above
it (at most `max_above`; beyond, the floor jumps over the oldest gap, counted in `skipped`). A producer
whose keys are derived from its input (a gap wherever an input made no output for this sink) reports
those numbers as skipped (`skip(lo, hi)`), so the floor passes them.

`SeenState` maps sources to `Seen`, keeps at most `max_sources` (the least recently written are
forgotten first: a restarted connector is a new source, so old ones stop growing the state), and is
saved as one small JSON file, written atomically (temporary file, fsync, rename, directory fsync):

    {"version": 1, "sources": {"<source>": [floor, [seq above, ...], skipped], ...},
     "rows": [[origin, table, exchange, rows], ...]}

`rows` counts the rows of the batches recorded with `count` (origin "" for websocket rows, "rest" for a
REST snapshot's), per table and venue: kept with the keys and saved with them, a sink's counts after a
restart are exactly those of the batches it answers as repeats (the summary's `written`). A state saved
before counts existed has no `rows` (empty). `owner` (a sink's writer id, unique per capture start) says
whose counts they are: a later capture on the same QuestDB spill folder keeps the keys, not the counts.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

#: seqs kept above a source's contiguous floor before the oldest gap is given up
MAX_ABOVE = 65_536
#: sources remembered by one sink (least recently written forgotten first)
MAX_SOURCES = 4_096
_VERSION = 1


class Seen:
    """Batch seqs of one source already stored: a contiguous floor plus a sparse set above it."""

    __slots__ = ("above", "floor", "max_above", "skipped")

    def __init__(self, max_above: int = MAX_ABOVE) -> None:
        self.floor = -1
        self.above: set[int] = set()
        self.max_above = max_above
        self.skipped = 0

    def __contains__(self, seq: int) -> bool:
        return seq <= self.floor or seq in self.above

    def add(self, seq: int) -> bool:
        """True when `seq` is new (and records it)."""
        if seq in self:
            return False
        self.above.add(seq)
        if len(self.above) > self.max_above:  # a gap that never closes must not grow the set forever
            self.floor = min(self.above) - 1
            self.skipped += 1
        self._advance()
        return True

    def skip(self, low: int, high: int) -> None:
        """Seqs `low..high` (inclusive) will never be written: count them as seen."""
        if high <= self.floor:
            return
        if low <= self.floor + 1:
            self.floor = high
            self.above = {seq for seq in self.above if seq > high}
        elif high - low < self.max_above:
            self.above.update(range(low, high + 1))
            if len(self.above) > self.max_above:
                self.floor = min(self.above) - 1
                self.skipped += 1
        else:  # a huge range far above the floor: give the gap below it up at once
            self.floor = high
            self.above = {seq for seq in self.above if seq > high}
            self.skipped += 1
        self._advance()

    def _advance(self) -> None:
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)

    def merge(self, other: Seen) -> None:
        """Add everything `other` saw."""
        if other.floor >= 0:
            self.skip(0, other.floor)
        for seq in other.above:
            self.add(seq)

    def to_json(self) -> list[Any]:
        return [self.floor, sorted(self.above), self.skipped]

    @classmethod
    def from_json(cls, data: list[Any], max_above: int = MAX_ABOVE) -> Seen:
        seen = cls(max_above)
        seen.floor = int(data[0])
        seen.above = {int(seq) for seq in data[1]}
        seen.skipped = int(data[2]) if len(data) > 2 else 0
        return seen


class SeenState:
    """`Seen` per source, bounded, saved and loaded as one JSON file.

    `state[source]` creates an empty entry on first use (and marks the source recently used).
    """

    def __init__(self, max_sources: int = MAX_SOURCES, max_above: int = MAX_ABOVE) -> None:
        self.sources: dict[str, Seen] = {}
        self.max_sources = max_sources
        self.max_above = max_above
        self.forgotten = 0
        #: (origin, table, exchange) -> rows stored (see the module doc), and whose counts they are
        self.rows: dict[tuple[str, str, str], int] = {}
        self.owner = ""

    def __getitem__(self, source: str) -> Seen:
        seen = self.sources.pop(source, None)
        if seen is None:
            seen = Seen(self.max_above)
            while len(self.sources) >= self.max_sources:  # the least recently written goes
                del self.sources[next(iter(self.sources))]
                self.forgotten += 1
        self.sources[source] = seen
        return seen

    def __contains__(self, key: tuple[str, int]) -> bool:
        seen = self.sources.get(key[0])
        return seen is not None and key[1] in seen

    def __len__(self) -> int:
        return len(self.sources)

    def __iter__(self) -> Iterator[str]:
        return iter(self.sources)

    def values(self) -> Iterable[Seen]:
        return self.sources.values()

    def add(self, source: str, seq: int) -> bool:
        return self[source].add(seq)

    def skip(self, skipped: Iterable[tuple[str, int, int]]) -> None:
        """Record ranges `(source, low, high)` a producer will never write."""
        for source, low, high in skipped:
            self[source].skip(low, high)

    def count(self, tables: Mapping[str, pa.RecordBatch | None], origin: str = "") -> None:
        """Count the rows of a stored batch's tables, per table and venue (a batch's venue: its first row's)."""
        for table, batch in tables.items():
            if batch is not None and batch.num_rows:
                key = (origin, table, exchange(batch))
                self.rows[key] = self.rows.get(key, 0) + batch.num_rows

    def merge(self, other: SeenState) -> None:
        for source, seen in other.sources.items():
            self[source].merge(seen)

    def copy(self) -> SeenState:
        out = SeenState(self.max_sources, self.max_above)
        out.merge(self)
        out.rows, out.owner = dict(self.rows), self.owner
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "sources": {source: seen.to_json() for source, seen in self.sources.items()},
            "rows": [[*key, rows] for key, rows in self.rows.items()],
            "owner": self.owner,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeenState:
        if data.get("version") != _VERSION:
            raise ValueError(f"unknown seen-state version {data.get('version')!r}")
        state = cls()
        for source, entry in data["sources"].items():
            state.sources[source] = Seen.from_json(entry, state.max_above)
        state.rows = {(str(o), str(t), str(e)): int(n) for o, t, e, n in data.get("rows", ())}
        state.owner = str(data.get("owner", ""))
        return state

    def save(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        """Write the state to `path` atomically (and durably with `fsync`)."""
        save_json(Path(path), self.to_json(), fsync)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SeenState:
        """The state saved at `path`; empty when there is none.

        Raises:
            ValueError: the file is not a saved state (it is never half written: see `save`).
        """
        path = Path(path)
        if not path.exists():
            return cls()
        return cls.from_json(json.loads(path.read_text()))


def save_json(path: Path, data: Any, fsync: bool = True) -> None:
    """`data` as JSON at `path`: temporary file, fsync, rename, directory fsync."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())
    os.replace(temporary, path)
    if fsync:
        descriptor = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def remove_temporary(path: Path) -> None:
    """Delete what an interrupted `save` left behind."""
    with contextlib.suppress(FileNotFoundError):
        path.with_name(f".{path.name}.tmp").unlink()


def exchange(batch: pa.RecordBatch) -> str:
    """The venue of a batch (one venue per batch; the first row's); "" for a batch without one."""
    if "exchange" not in batch.schema.names:
        return ""
    column = batch.column("exchange")
    if pa.types.is_dictionary(column.type):
        return str(column.dictionary[column.indices[0].as_py()].as_py())
    return str(column[0].as_py())
