"""A durable FIFO of RecordBatches on local disk: where QuestDB batches wait while it is down.

One Parquet file per batch, named by a sequence number so that directory order
is arrival order: `<seq:020d>.<table>.parquet`. Each file is written under a
hidden temporary name, fsync'd, renamed, and the directory fsync'd, so a batch
is either wholly spilled or absent after a crash. The queue survives restarts:
a new Spill on the same directory picks up where the old one stopped.

Batches the server refuses for good (malformed data) go to `rejected/`
next to an `.error.txt`, so one bad batch cannot block the queue.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: `<seq>.<table>.parquet`; table names may hold digits (`l2`)
_NAME = re.compile(r"^(\d{20})\.([a-z0-9_]+)\.parquet$")


@dataclass(frozen=True)
class SpillEntry:
    """One spilled batch: its position in the queue, table, file and size."""

    seq: int
    table: str
    path: Path
    rows: int


class Spill:
    """Append-only, in-order, fsync'd queue of batches in `directory`.

    Not thread-safe: owned by one sink.
    """

    def __init__(self, directory: str | os.PathLike[str], fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.rejected_directory = self.directory / "rejected"
        self.fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)
        self._entries: list[SpillEntry] = []
        for path in sorted(self.directory.iterdir()):
            match = _NAME.match(path.name)
            if match:
                rows = pq.ParquetFile(path).metadata.num_rows
                self._entries.append(SpillEntry(int(match.group(1)), match.group(2), path, rows))
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                # a spill interrupted by a crash: its write() never returned, so the
                # caller still owns (and will resend) that batch
                path.unlink()
        # rejected files share the numbering, so a restart never overwrites one
        rejected = [
            int(match.group(1))
            for path in (self.rejected_directory.iterdir() if self.rejected_directory.is_dir() else ())
            if (match := _NAME.match(path.name))
        ]
        self._next_seq = max([entry.seq for entry in self._entries] + rejected, default=-1) + 1

    def __len__(self) -> int:
        return len(self._entries)

    def rows(self) -> int:
        """Rows waiting in the queue."""
        return sum(entry.rows for entry in self._entries)

    def entries(self) -> list[SpillEntry]:
        """The queue, oldest first."""
        return list(self._entries)

    def append(self, table: str, batch: pa.RecordBatch) -> SpillEntry:
        """Write `batch` durably at the tail of the queue."""
        seq = self._next_seq
        name = f"{seq:020d}.{table}.parquet"
        path = self.directory / name
        self._write_durably(pa.Table.from_batches([batch]), self.directory / f".{name}.tmp", path)
        self._next_seq += 1
        entry = SpillEntry(seq, table, path, batch.num_rows)
        self._entries.append(entry)
        return entry

    def read(self, entry: SpillEntry) -> pa.RecordBatch:
        """The batch stored in `entry`, with its original schema."""
        table = pq.read_table(entry.path).combine_chunks()
        batches = table.to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)

    def remove(self, entry: SpillEntry) -> None:
        """Drop the head of the queue after it was delivered."""
        if not self._entries or self._entries[0] != entry:
            raise ValueError(f"only the oldest spilled batch can be removed, not seq {entry.seq}")
        entry.path.unlink()
        self._sync_directory(self.directory)
        self._entries.pop(0)

    def reject(self, entry: SpillEntry, reason: str) -> Path:
        """Move the head of the queue to `rejected/` with the server's reason; return its new path."""
        if not self._entries or self._entries[0] != entry:
            raise ValueError(f"only the oldest spilled batch can be rejected, not seq {entry.seq}")
        self.rejected_directory.mkdir(exist_ok=True)
        target = self.rejected_directory / entry.path.name
        (self.rejected_directory / f"{entry.path.name}.error.txt").write_text(reason + "\n")
        os.replace(entry.path, target)
        self._sync_directory(self.rejected_directory)
        self._sync_directory(self.directory)
        self._entries.pop(0)
        return target

    def reject_batch(self, table: str, batch: pa.RecordBatch, reason: str) -> Path:
        """Store a batch that never entered the queue straight in `rejected/`; return its path."""
        self.rejected_directory.mkdir(exist_ok=True)
        name = f"{self._next_seq:020d}.{table}.parquet"
        self._next_seq += 1
        target = self.rejected_directory / name
        (self.rejected_directory / f"{name}.error.txt").write_text(reason + "\n")
        self._write_durably(pa.Table.from_batches([batch]), self.rejected_directory / f".{name}.tmp", target)
        return target

    def _write_durably(self, table: pa.Table, temporary: Path, final: Path) -> None:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
        os.replace(temporary, final)
        self._sync_directory(final.parent)

    def _sync_directory(self, directory: Path) -> None:
        # the rename itself is only durable once the directory entry is on disk
        if not self.fsync:
            return
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
