"""The files of one Parquet writer: per partition, a row-group buffer and one open file, published by rename.

Used only from the ParquetSink writer thread. Counters are updated under the
lock the sink passes in, so `stats()` can read them from another thread.

A file is written as `ROOT/.tmp/<writer>/<table>/exchange=<x>/date=<d>/part-<writer>-<n>.parquet.tmp`
and renamed to `ROOT/<table>/exchange=<x>/date=<d>/part-<writer>-<n>.parquet`
when complete. Rows leave the buffer only once they are in the file, so a
failed write leaves them buffered for the next attempt. Rows are counted
written (`rows`) when their file is published: fsync'd, renamed, and every
directory created for it fsync'd up to the root.

Write-ahead log positions: each piece may carry the `lsn` of its log record
(`xtrader.sinks.wal`). A partition's rows are written in lsn order, so a file
covers one contiguous run of its partition's stream; its footer records where
that run ends (`xtrader.wal` = `"<lsn>:<rows of that lsn's piece>"`).
`covered(directory)` reads it back, so a replay after a crash skips exactly
the rows already in a published (or complete temporary) file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from xtrader.sinks.common import add_counts
from xtrader.sinks.outage import Outage
from xtrader.sinks.partition import DICTIONARY_COLUMNS, FILE_SCHEMAS, Piece

#: after a failed write, a partition waits this long before the next try (unless flushed)
RETRY_AFTER_ERROR_S = 1.0
#: footer key: where, in its partition's stream of log records, a file's rows end
WAL_KEY = b"xtrader.wal"

#: a position in one partition's stream: (lsn, rows of that lsn's piece up to here)
Position = tuple[int, int]


def publish_file(temporary: Path, final: Path) -> None:
    """Rename a complete file into the table tree: the one moment readers can first see it.

    A module function so that a test can pause here and look at the tree as a reader would.
    """
    os.replace(temporary, final)


@dataclass
class Limits:
    """When a file is closed (any of the first three) and how big its row groups are."""

    max_rows: int
    max_bytes: int
    max_seconds: float
    row_group_rows: int


@dataclass
class _OpenFile:
    handle: BinaryIO
    writer: pq.ParquetWriter
    temporary: Path
    final: Path
    rows: int = 0
    bytes: int = 0
    #: lsn of the file's first row (None without a log)
    first_lsn: int | None = None
    #: position just after the file's last row
    end: Position | None = None


@dataclass
class _Partition:
    """One (table, exchange, date): rows waiting for a row group, and the file being written."""

    table: str
    exchange: str
    directory: Path
    pending: list[pa.RecordBatch] = field(default_factory=list)
    pending_rows: int = 0
    pending_bytes: int = 0
    #: the log records of the pending rows, in order: (lsn, rows of its piece written, rows of its piece)
    marks: deque[tuple[int, int, int]] = field(default_factory=deque)
    #: clock time of the oldest pending row
    pending_since: float | None = None
    #: clock time of the first row of the current file (pending or written)
    started: float | None = None
    file: _OpenFile | None = None
    retry_at: float = 0.0


class PartitionFiles:
    """Row groups and files of every partition one writer has open.

    Args:
        root: dataset root.
        writer_id: the writer's name in file names.
        limits: rotation and row-group sizes.
        compression: Parquet codec.
        fsync: fsync each file and its directory when publishing.
        lock: held while counters change.
    """

    def __init__(
        self,
        root: Path,
        writer_id: str,
        limits: Limits,
        compression: str,
        fsync: bool,
        lock: threading.Condition,
    ) -> None:
        self.root = root
        self.writer_id = writer_id
        self.limits = limits
        self.compression = compression
        self.fsync = fsync
        self.lock = lock
        self.temporary_root = root / ".tmp" / writer_id
        #: rows written to files, per table and exchange
        self.rows: dict[str, dict[str, int]] = {}
        self.counters = dict.fromkeys(
            ("files", "bytes", "lost_rows", "recovered_files", "discarded_temporary_files"), 0
        )
        #: row groups written plus files published: what a flush did to the disk
        self.disk_writes = 0
        #: files published (a log may be truncated after one)
        self.published = 0
        self._partitions: dict[tuple[str, str, str], _Partition] = {}
        self._next_number: dict[Path, int] = {}
        self._name = re.compile(rf"^part-{re.escape(writer_id)}-(\d+)\.parquet$")
        #: an injected outage (chaos `parquet_unwritable_s`): row-group writes and publishes fail meanwhile
        self.outage = Outage()

    # what the sink asks -----------------------------------------------------------------

    def add(self, pieces: list[tuple[Position | None, Piece]], now: float) -> None:
        """Buffer pieces in their partitions (memory only).

        Each comes with its place in the log, or None: (lsn, rows of the record's piece before this one;
        not 0 only for a replayed piece whose head is already in a file).
        """
        for mark, piece in pieces:
            key = (piece.table, piece.exchange, piece.date)
            part = self._partitions.get(key)
            if part is None:
                part = self._partitions[key] = _Partition(piece.table, piece.exchange, piece.directory(self.root))
            part.pending.append(piece.batch)
            part.pending_rows += piece.batch.num_rows
            part.pending_bytes += piece.batch.nbytes
            if mark is not None:
                part.marks.append((mark[0], mark[1], mark[1] + piece.batch.num_rows))
            if part.started is None:
                part.started = now
            if part.pending_since is None:
                part.pending_since = now

    def write(self, now: float, publish_all: bool, hold_s: float | None = None) -> BaseException | None:
        """Write full row groups and publish files due; everything with `publish_all`. Returns the first error.

        With `hold_s`, pending rows older than that are written as a row group (not published).
        """
        first_error: BaseException | None = None
        for key, part in list(self._partitions.items()):
            if not publish_all and now < part.retry_at:
                continue
            expired = part.started is not None and now - part.started >= self.limits.max_seconds
            stale = hold_s is not None and part.pending_since is not None and now - part.pending_since >= hold_s
            # its last write failed: try it again now (the held rows, else the file's publish), or a pass that
            # writes nothing would clear the retry and call the sink recovered while its disk still fails
            retry = part.retry_at > 0.0
            try:
                self._drain(part, publish_all or expired or (retry and not part.pending), now, stale or retry)
            except Exception as exc:  # handed to the caller's thread by the sink
                part.retry_at = now + RETRY_AFTER_ERROR_S
                first_error = first_error or exc
                continue
            part.retry_at = 0.0
            if part.file is None and not part.pending:
                del self._partitions[key]
        return first_error

    def deadline(self) -> float | None:
        """When `write` must run again without new data: a file's max_seconds, or a retry."""
        deadlines = [
            part.retry_at or part.started + self.limits.max_seconds
            for part in self._partitions.values()
            if part.started is not None
        ]
        return min(deadlines, default=None)

    def retrying(self) -> bool:
        """True while a partition's last write failed (it is retried after `RETRY_AFTER_ERROR_S`)."""
        return any(part.retry_at for part in self._partitions.values())

    def open_files(self) -> int:
        return sum(1 for part in self._partitions.values() if part.file is not None)

    def pending_rows(self) -> int:
        return sum(part.pending_rows for part in self._partitions.values())

    def pending_bytes(self) -> int:
        return sum(part.pending_bytes for part in self._partitions.values())

    def low_water(self) -> int | None:
        """The lowest lsn with rows not yet in a published file (None: every logged row is published)."""
        lows = [
            part.file.first_lsn if part.file is not None and part.file.first_lsn is not None else part.marks[0][0]
            for part in self._partitions.values()
            if (part.file is not None and part.file.first_lsn is not None) or part.marks
        ]
        return min(lows, default=None)

    def covered(self, directory: Path) -> Position | None:
        """Where this writer's files in `directory` end in the partition's log stream (None: no logged file)."""
        best: Position | None = None
        for path in directory.iterdir() if directory.is_dir() else ():
            if not self._name.match(path.name):
                continue
            try:
                value = (pq.ParquetFile(path).metadata.metadata or {}).get(WAL_KEY)
            except Exception:  # not ours to judge here: a reader will say so
                continue
            if value:
                lsn, rows = (int(x) for x in value.decode().split(":"))
                best = max(best, (lsn, rows)) if best is not None else (lsn, rows)
        return best

    def count_published(self) -> None:
        """Count the rows of this writer's files already published (a restarted sink: the same writer id).

        `rows` is what the summary reports as written: counting only this process's files undercounted after
        every restart. Reads each file's footer only; another writer's files are not counted."""
        for path in self.root.glob(f"*/exchange=*/**/part-{self.writer_id}-*.parquet"):
            if not self._name.match(path.name):
                continue
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
            except Exception:  # unreadable: a reader will say so, and it is not counted as stored
                continue
            table, exchange = path.relative_to(self.root).parts[:2]
            add_counts(self.rows, table, {exchange.removeprefix("exchange="): rows})

    def recover(self) -> None:
        """Files left by a crash of this writer: publish the complete ones, delete the torn ones."""
        if not self.temporary_root.is_dir():
            return
        for temporary in sorted(self.temporary_root.rglob("*.parquet.tmp")):
            directory = self.root / temporary.relative_to(self.temporary_root).parent
            try:
                rows = pq.ParquetFile(temporary).metadata.num_rows
            except Exception:  # no footer: torn by the crash
                rows = 0
            if not rows:
                temporary.unlink()
                self.counters["discarded_temporary_files"] += 1
                continue
            final = directory / temporary.name.removesuffix(".tmp")
            if final.exists():
                final = directory / f"part-{self.writer_id}-{self._allocate_number(directory)}.parquet"
            self._make_directories(directory)
            publish_file(temporary, final)
            self._sync_directory(directory)
            self.counters["recovered_files"] += 1
            # published now, so counted now (the crashed writer counted only what it published)
            table, exchange = directory.relative_to(self.root).parts[:2]
            add_counts(self.rows, table, {exchange.removeprefix("exchange="): rows})
        self._next_number.clear()  # numbering restarts from what is now on disk

    def remove_empty_directories(self) -> None:
        """Leave no empty `.tmp` tree behind a closed writer (other writers' files are never touched)."""
        for directory in sorted(self.temporary_root.rglob("*"), key=lambda path: len(path.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        for directory in (self.temporary_root, self.temporary_root.parent):
            with contextlib.suppress(OSError):
                directory.rmdir()

    # row groups and files -----------------------------------------------------------------

    def _drain(self, part: _Partition, publish: bool, now: float, stale: bool = False) -> None:
        """Write full row groups (with `stale`, the rest too); with `publish`, also the rest, and close the file."""
        limits = self.limits
        while part.pending_rows and (
            publish
            or stale
            or part.pending_rows >= limits.row_group_rows
            or (part.file.rows if part.file else 0) + part.pending_rows >= limits.max_rows
        ):
            room = limits.max_rows - (part.file.rows if part.file else 0)
            self._write_row_group(part, min(part.pending_rows, limits.row_group_rows, room))
            assert part.file is not None
            if part.file.rows >= limits.max_rows or part.file.bytes >= limits.max_bytes:
                self._publish(part)
                # the rest starts a new file, with a new age
                part.started = now if part.pending else None
        if publish and part.file is not None:
            self._publish(part)
        if part.file is None and not part.pending:
            part.started = None

    def _write_row_group(self, part: _Partition, rows: int) -> None:
        self._writable()
        pending = pa.Table.from_batches(part.pending, schema=FILE_SCHEMAS[part.table])
        if part.file is None:
            part.file = self._open(part)
        try:
            part.file.writer.write_table(pending.slice(0, rows), row_group_size=rows)
        except Exception:
            self._abandon(part)
            raise
        part.file.rows += rows
        part.file.bytes = part.file.handle.tell()
        self.disk_writes += 1
        # only now, with the rows in the file, do they leave the buffer
        part.pending = pending.slice(rows).to_batches()
        part.pending_rows -= rows
        part.pending_bytes = sum(batch.nbytes for batch in part.pending)
        part.pending_since = part.pending_since if part.pending_rows else None
        left = rows
        while left and part.marks:
            lsn, done, total = part.marks[0]
            if part.file.first_lsn is None:
                part.file.first_lsn = lsn
            take = min(total - done, left)
            done += take
            left -= take
            part.file.end = (lsn, done)
            if done == total:
                part.marks.popleft()
            else:
                part.marks[0] = (lsn, done, total)

    def _open(self, part: _Partition) -> _OpenFile:
        number = self._allocate_number(part.directory)
        final = part.directory / f"part-{self.writer_id}-{number}.parquet"
        temporary = self.temporary_root / final.relative_to(self.root).parent / (final.name + ".tmp")
        temporary.parent.mkdir(parents=True, exist_ok=True)
        handle = open(temporary, "wb")  # noqa: SIM115 - closed in _publish / _abandon
        try:
            writer = pq.ParquetWriter(
                handle,
                FILE_SCHEMAS[part.table],
                compression=self.compression,
                use_dictionary=DICTIONARY_COLUMNS[part.table],
            )
        except Exception:
            handle.close()
            raise
        return _OpenFile(handle, writer, temporary, final)

    def _allocate_number(self, directory: Path) -> int:
        """The next free `n` of `part-<writer>-<n>.parquet` in `directory`; never one already published."""
        if directory not in self._next_number:
            used = [
                int(match.group(1))
                for path in (directory.iterdir() if directory.is_dir() else ())
                if (match := self._name.match(path.name))
            ]
            self._next_number[directory] = max(used, default=-1) + 1
        number = self._next_number[directory]
        self._next_number[directory] = number + 1
        return number

    def _publish(self, part: _Partition) -> None:
        """Close the file and rename it into the table tree."""
        self._writable()
        open_file, part.file = part.file, None
        assert open_file is not None
        try:
            _mark_end(open_file)
            open_file.writer.close()
            open_file.handle.flush()
            if self.fsync:
                os.fsync(open_file.handle.fileno())
            open_file.handle.close()
            size = open_file.temporary.stat().st_size
            self._make_directories(open_file.final.parent)
            publish_file(open_file.temporary, open_file.final)
            self.disk_writes += 1
            self._sync_directory(open_file.final.parent)
        except Exception:
            part.file = open_file
            self._abandon(part)
            raise
        self.published += 1
        with self.lock:
            self.counters["files"] += 1
            self.counters["bytes"] += size
            add_counts(self.rows, part.table, {part.exchange: open_file.rows})

    def _writable(self) -> None:
        """Raise what a read-only table tree raises while an injected outage lasts (before anything changes)."""
        if self.outage.active:
            raise OSError(errno.EROFS, "Read-only file system (injected outage: chaos parquet_unwritable_s)")

    def _abandon(self, part: _Partition) -> None:
        """After a write error: publish the file if it holds exactly the rows known written, else drop it.

        The rows of the failed write are still pending and go to a new file, so
        publishing a file with any other row count could duplicate them.
        """
        open_file, part.file = part.file, None
        if open_file is None:
            return
        try:
            _mark_end(open_file)
            open_file.writer.close()
            open_file.handle.close()
            intact = pq.ParquetFile(open_file.temporary).metadata.num_rows == open_file.rows
        except Exception:  # the file is beyond use; its rows are counted lost below
            intact = False
        if intact and open_file.rows:
            self._make_directories(open_file.final.parent)
            publish_file(open_file.temporary, open_file.final)
            self._sync_directory(open_file.final.parent)
            self.published += 1
            with self.lock:
                self.counters["files"] += 1
                self.counters["bytes"] += open_file.final.stat().st_size
                add_counts(self.rows, part.table, {part.exchange: open_file.rows})
            return
        with self.lock:
            self.counters["lost_rows"] += open_file.rows
        open_file.temporary.unlink(missing_ok=True)

    def _make_directories(self, directory: Path) -> None:
        """Create `directory` and its missing parents; each new one is made durable in its parent, up to the root."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            if directory == directory.parent:
                break
            directory = directory.parent
        for new in reversed(missing):
            new.mkdir(exist_ok=True)
            self._sync_directory(new.parent)

    def _sync_directory(self, directory: Path) -> None:
        # the rename is only durable once the directory entry is on disk
        if not self.fsync:
            return
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _mark_end(open_file: _OpenFile) -> None:
    """Record in the footer where the file ends in its partition's log stream (written by `close`)."""
    if open_file.end is not None:
        lsn, rows = open_file.end
        open_file.writer.add_key_value_metadata({WAL_KEY: f"{lsn}:{rows}".encode()})
