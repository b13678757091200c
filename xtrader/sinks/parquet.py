"""Parquet sink: hive-partitioned zstd files written by a background thread, published by rename.

`write()` never touches the disk: it validates and splits the batch by
partition (`xtrader.sinks.partition`) and appends it to the current buffer.
A writer thread swaps that buffer for an empty one and writes what it took
while the caller keeps appending (double buffering). When the writer falls
behind and the current buffer is full, `write()` waits rather than drop data
or grow without bound; the wait is counted in `stats()`.

Files: `ROOT/<table>/exchange=<x>/date=<YYYY-MM-DD>/part-<writer>-<n>.parquet`,
written under `ROOT/.tmp/<writer>/...parquet.tmp` and renamed into place when
closed: readers never see a torn file, and nothing but finished `.parquet`
files ever sits in the table tree (Polars refuses a directory that mixes
extensions). A file is closed at `max_rows`, `max_bytes` (compressed, on
disk) or `max_seconds` after its first row, and on `flush()` / `close()`.
Rows reach the file in row groups of `row_group_rows`.

Modes set the defaults: `realtime` (small row groups, files published within a
minute, so data is readable soon) and `archival` (large row groups, hourly
files); the numbers follow `xtrader.config.ROTATION_PRESETS`.

A write error in the thread is raised by the next call (`SinkError`); the rows
that failed stay buffered and are retried on the next flush or after a second.
While writing fails, the sink holds at most `buffer_bytes` of such rows in memory;
beyond, a new batch is only appended to the write-ahead log (acknowledged, counted
in `log_only_batches`) and read back from it, `buffer_bytes` at a time, once writing
works again: a full or read-only Parquet disk keeps the data in the log (put it on
another volume with `wal_dir`) and memory bounded. Without a log (`wal=False`), new
batches are refused with a `SinkError` (back-pressure) until a write succeeds.
`failing` says why writing fails (None while it works).

Acknowledged means durable: with `wal` (the default) `write()` returns only once
the batch is in the write-ahead log (`xtrader.sinks.wal`, `ROOT/.wal/<writer>/`):
written to the kernel, so it survives the death of the process, and fsync'd on
every `tick()` (`wal_sync="os"`, the default), or fsync'd before `write()`
returns (`wal_sync="batch"`: it survives a power loss too, at a price measured
in benchmarks/RESULTS.md). A new sink on the same root and writer id publishes the
complete temporary files of a crash, then replays the log, skipping the rows
already in a file (each file's footer says where in the log it ends), so every
acknowledged row lands exactly once. The log is truncated as files are
published; when it grows beyond `wal_max_bytes` every open file is published
early so it can be. `recovered_keys` lists the (source_id, batch_seq) replayed.

Idempotence across restarts: `recovered_seen()` is every (source_id, batch_seq) the
log ever took, including batches whose records were truncated (the log saves them
in `ROOT/.wal/<writer>/seen.json` before it deletes a segment); the sink's front
starts from it, so a retry of any acknowledged batch is a repeat after a restart.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from xtrader.histogram import Histogram
from xtrader.seen import SeenState
from xtrader.sinks.common import Durations, SinkClosed, SinkError, conform
from xtrader.sinks.files import Limits, PartitionFiles, Position
from xtrader.sinks.partition import Piece, split
from xtrader.sinks.wal import Skipped, Sync, WriteAheadLog

MODES: dict[str, dict[str, Any]] = {
    "realtime": {
        "max_rows": 1_000_000,
        "max_bytes": 64 << 20,
        "max_seconds": 60.0,
        "row_group_rows": 10_000,
        "buffer_bytes": 16 << 20,
        "wal_max_bytes": 256 << 20,
    },
    "archival": {
        "max_rows": 50_000_000,
        "max_bytes": 1 << 30,
        "max_seconds": 3600.0,
        "row_group_rows": 500_000,
        "buffer_bytes": 64 << 20,
        "wal_max_bytes": 1 << 30,
    },
}
_WRITER_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class ParquetSink:
    """Hive-partitioned Parquet files of every stored table, written off the caller's thread.

    Args:
        root: dataset root directory.
        writer_id: this writer's name in file names (`[A-Za-z0-9_-]+`), unique among
            writers sharing `root`.
        mode: `realtime` or `archival`: defaults for the limits below.
        max_rows, max_bytes, max_seconds: close (publish) a file at any of these.
        row_group_rows: rows per row group.
        compression: Parquet codec.
        buffer_bytes: size of the caller's buffer; `write()` waits beyond it while the
            writer is busy.
        fsync: fsync files and directories when publishing, and each log append.
        clock: monotonic seconds, for `max_seconds`.
        wal: log every batch before acknowledging it (see the module doc).
        wal_max_bytes: publish every open file early when the log is bigger.
        wal_dir: the log's parent directory (`<wal_dir>/<writer_id>/`); None: `ROOT/.wal`. Another volume
            than `root` keeps the data safe while the Parquet disk is full or read-only.
        wal_sync: `"os"` (acknowledged once in the kernel: survives the process; fsync'd on `tick()`)
            or `"batch"` (fsync'd before each acknowledgement: survives a power loss); `xtrader.sinks.wal`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        writer_id: str,
        mode: str = "realtime",
        *,
        max_rows: int | None = None,
        max_bytes: int | None = None,
        max_seconds: float | None = None,
        row_group_rows: int | None = None,
        compression: str = "zstd",
        buffer_bytes: int | None = None,
        fsync: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wal: bool = True,
        wal_max_bytes: int | None = None,
        wal_sync: Sync = "os",
        wal_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        if not _WRITER_ID.match(writer_id):
            raise ValueError(f"writer_id must match [A-Za-z0-9_-]+, got {writer_id!r}")
        defaults = MODES[mode]
        self.root = Path(root)
        self.writer_id = writer_id
        self.mode = mode
        max_rows = max_rows or defaults["max_rows"]
        self.limits = Limits(
            max_rows=max_rows,
            max_bytes=max_bytes or defaults["max_bytes"],
            max_seconds=max_seconds or defaults["max_seconds"],
            row_group_rows=min(row_group_rows or defaults["row_group_rows"], max_rows),
        )
        self.buffer_bytes: int = buffer_bytes or defaults["buffer_bytes"]
        self._clock = clock
        self._cond = threading.Condition()
        # caller side, under _cond
        self._filling: list[tuple[Position | None, Piece]] = []
        self._filling_bytes = 0
        self._writing_bytes = 0
        self._flush_requested = 0
        self._flush_done = 0
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self._counters = dict.fromkeys(("blocked_writes", "errors"), 0)
        self._blocked_s = 0.0
        self._queue_high_water_bytes = 0
        self._durations = Durations()
        self._last_error: str | None = None
        self._open_files = 0
        self._pending_rows = 0
        self._pending_bytes = 0
        self._failing = False
        self._hold_s: float | None = None
        #: the first lsn of the batches only in the log (taken while writing failed), None: none
        self._deferred_from: int | None = None
        self._log_only_batches = 0
        self.wal_max_bytes: int = wal_max_bytes or defaults["wal_max_bytes"]
        # writer-thread side
        self._files = PartitionFiles(self.root, writer_id, self.limits, compression, fsync, self._cond)
        self._files.recover()
        self._wal: WriteAheadLog | None = None
        self.recovered_keys: list[tuple[str, int]] = []
        self._replayed_rows = 0
        self._recovered_seen = SeenState()
        self._recovered_origins: dict[str, dict[str, dict[str, int]]] = {}
        if wal:
            wal_root = Path(wal_dir) if wal_dir is not None else self.root / ".wal"
            self._wal = WriteAheadLog(wal_root / writer_id, fsync=fsync, sync=wal_sync)
            self._recovered_seen = self._wal.seen_state()
            self._recovered_origins = self._wal.origin_rows()
            self._replay()
        self._thread = threading.Thread(target=self._run, name=f"parquet-sink-{writer_id}", daemon=True)
        self._thread.start()

    # caller API -----------------------------------------------------------------------

    def write(self, table: str, batch: pa.RecordBatch) -> None:
        """Queue one batch of stored table `table`; see `write_tables`."""
        self.write_tables({table: batch})

    def recovered_seen(self) -> SeenState:
        """The (source_id, batch_seq) of every batch this writer's log took before this start."""
        return self._recovered_seen.copy()

    def recovered_origins(self) -> dict[str, dict[str, dict[str, int]]]:
        """Rows per origin (`rest`), table and exchange this writer's log took before this start."""
        return {o: {t: dict(e) for t, e in tables.items()} for o, tables in self._recovered_origins.items()}

    def write_tables(
        self,
        tables: dict[str, pa.RecordBatch],
        source: str = "",
        seq: int = -1,
        skipped: Skipped = (),
        origin: str = "",
    ) -> None:
        """Log (when `wal`) and queue one producer batch of stored tables, all or nothing.

        Returns once the batch would survive this process's death; waits only if the
        writer is a full buffer behind. `source` / `seq` are kept in the log for a replay,
        and `skipped` (`(source, low, high)`: seqs the producer will never send).

        Raises:
            ValueError: unknown table or a batch that does not fit its schema.
            SinkError: the writer failed since the last call, or still fails with `buffer_bytes`
                of rows held, or the sink is closed (this batch was not taken).
        """
        conformed = {t: conform(t, b) for t, b in tables.items() if b.num_rows}
        pieces = [piece for t, b in conformed.items() for piece in split(t, b)]
        size = sum(piece.batch.nbytes for piece in pieces)
        with self._cond:
            self._raise_failure()
            if self._closed or self._closing:
                raise SinkClosed("ParquetSink is closed")
            if self._wal is not None and (
                self._deferred_from is not None
                or (self._failing and self._pending_bytes + self._filling_bytes + size > self.buffer_bytes)
            ):
                if pieces:
                    self._log_only(source, seq, conformed, origin)
                return
            if self._failing and self._pending_bytes + self._filling_bytes + size > self.buffer_bytes:
                raise SinkError(
                    f"Parquet writer is failing ({self._last_error}); {self._pending_rows} rows held, "
                    "no more taken until a write succeeds"
                )
            if self._filling and self._filling_bytes + size > self.buffer_bytes:
                self._counters["blocked_writes"] += 1
                started = time.perf_counter()
                while (
                    self._filling
                    and self._filling_bytes + size > self.buffer_bytes
                    and self._error is None
                    and self._thread.is_alive()
                ):
                    self._cond.wait()
                self._blocked_s += time.perf_counter() - started
                self._raise_failure()
            if not pieces and not (skipped and self._wal is not None):
                return
            try:
                mark = (self._wal.append(source, seq, conformed, skipped, origin), 0) if self._wal is not None else None
            except OSError as exc:  # disk full...: not logged, not taken; the caller retries
                self._counters["errors"] += 1
                self._last_error = repr(exc)
                raise SinkError(f"write-ahead log failed: {exc!r}; the batch was not taken") from exc
            self._filling.extend((mark, piece) for piece in pieces)
            self._filling_bytes += size
            depth = self._filling_bytes + self._writing_bytes
            self._queue_high_water_bytes = max(self._queue_high_water_bytes, depth)
            self._cond.notify_all()

    def _log_only(self, source: str, seq: int, conformed: dict[str, pa.RecordBatch], origin: str = "") -> None:
        """Acknowledge a batch once it is in the log, without holding it in memory; call with _cond held."""
        assert self._wal is not None
        try:
            lsn = self._wal.append(source, seq, conformed, origin=origin)
        except OSError as exc:  # the log's disk fails too: not taken, the caller retries
            self._counters["errors"] += 1
            self._last_error = repr(exc)
            raise SinkError(f"write-ahead log failed: {exc!r}; the batch was not taken") from exc
        if self._deferred_from is None:
            self._deferred_from = lsn
        self._log_only_batches += 1

    @property
    def failing(self) -> str | None:
        """Why writing fails (the last error) while it does; None while it works."""
        with self._cond:
            return self._last_error if self._failing else None

    def flush(self) -> None:
        """Write and publish everything written so far; returns when it is readable.

        Raises:
            SinkError: the writer failed (the rows stay buffered; call again to retry).
        """
        with self._cond:
            self._raise_failure()
            if self._closed:
                return
            self._flush_requested += 1
            target = self._flush_requested
            self._cond.notify_all()
            while self._flush_done < target and self._thread.is_alive():
                self._cond.wait()
            self._raise_failure()

    def tick(self, hold_s: float) -> None:
        """Ask the writer to write rows held in memory longer than `hold_s` into their files (a row group each);
        called periodically by the sink's host (`pipeline.flush_interval_s`). Also fsyncs the log (`wal_sync="os"`).
        """
        with self._cond:
            self._hold_s = hold_s
            self._cond.notify_all()
        if self._wal is not None:
            self._wal.sync()

    def close(self) -> None:
        """Flush everything and stop the writer thread. Raises like `flush()`; may then be called again."""
        with self._cond:
            if self._closed:
                return
            self._raise_failure()
            self._closing = True
            self._flush_requested += 1
            target = self._flush_requested
            self._cond.notify_all()
            while self._flush_done < target and self._thread.is_alive():
                self._cond.wait()
            self._raise_failure()
        self._thread.join()
        with self._cond:
            self._closed = True
        if self._wal is not None:
            self._wal.close()

    def stats(self) -> dict[str, Any]:
        """Counters and gauges.

        Keys: `rows` (written to files, per table and exchange), `files` / `bytes` (published),
        `open_files`, `pending_rows` (waiting for a row group), `queue_bytes` (buffered, not yet
        taken or being written) and `queue_high_water_bytes`, `blocked_writes` / `blocked_seconds`
        (writes that waited for the writer), `flush_p50_ms` / `flush_p99_ms` (a writer pass that wrote row
        groups or published files; passes that only buffered rows are not flushes),
        `errors`, `last_error`, `lost_rows` (in a file that a write error left unreadable),
        `recovered_files` / `discarded_temporary_files` (left by a crash), `wal_bytes`, `replayed_rows`
        (taken from the log at start), `wal_torn_records` (a crash's unacknowledged tail, ignored),
        `log_only_batches` (taken into the log only, while writing failed), `failing` (why, while it does).
        """
        with self._cond:
            return {
                "rows": {table: dict(per) for table, per in self._files.rows.items()},
                **self._files.counters,
                **self._counters,
                "open_files": self._open_files,
                "pending_rows": self._pending_rows,
                "queue_bytes": self._filling_bytes + self._writing_bytes,
                "queue_high_water_bytes": self._queue_high_water_bytes,
                "blocked_seconds": self._blocked_s,
                "flush_p50_ms": self._durations.percentile_ms(0.50),
                "flush_p99_ms": self._durations.percentile_ms(0.99),
                "last_error": self._last_error,
                "wal_bytes": self._wal.bytes if self._wal is not None else 0,
                "replayed_rows": self._replayed_rows,
                "wal_torn_records": self._wal.torn_records if self._wal is not None else 0,
                "log_only_batches": self._log_only_batches,
                "failing": self._last_error if self._failing else None,
            }

    def flush_times(self) -> Histogram:
        """Durations of the writer's flushes (passes that wrote row groups or published files), ns; a copy."""
        with self._cond:
            return self._durations.histogram.copy()

    def _raise_failure(self) -> None:
        """Raise (once) what the writer thread stored; call with _cond held."""
        error, self._error = self._error, None
        if error is not None:
            raise SinkError(f"Parquet writer failed: {error!r}; the failed rows are kept for retry") from error
        if not self._thread.is_alive() and not self._closed and not self._closing:
            raise SinkError("Parquet writer thread is not running")

    # writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._cycle():
                pass
        except BaseException as exc:  # a dead writer must be reported, not silent
            with self._cond:
                self._error = exc
                self._counters["errors"] += 1
                self._last_error = repr(exc)
                self._cond.notify_all()

    def _cycle(self) -> bool:
        """Take the caller's buffer, write it; False when the sink is closed."""
        with self._cond:
            while not (
                self._filling
                or self._closing
                or self._flush_requested > self._flush_done
                or self._hold_s is not None
                or (self._deferred_from is not None and not self._failing)
            ):
                deadline = self._files.deadline()
                timeout = None if deadline is None else deadline - self._clock()
                if timeout is not None and timeout <= 0:
                    break
                self._cond.wait(timeout)
            if self._deferred_from is not None and not self._failing:
                self._read_back()
            pieces, self._filling = self._filling, []
            self._writing_bytes, self._filling_bytes = self._filling_bytes, 0
            flush_target, closing = self._flush_requested, self._closing
            hold_s, self._hold_s = self._hold_s, None
            self._cond.notify_all()  # callers waiting for room
        wal_full = self._wal is not None and self._wal.bytes > self.wal_max_bytes
        force = flush_target > self._flush_done or closing or wal_full
        disk_writes, published = self._files.disk_writes, self._files.published
        started = time.perf_counter()
        error = self._process(pieces, force, hold_s)
        elapsed = time.perf_counter() - started
        with self._cond:
            self._writing_bytes = 0
            if self._files.disk_writes != disk_writes:  # a flush: row groups written or files published
                self._durations.add(elapsed)
            if error is not None:
                self._error = error
                self._counters["errors"] += 1
                self._last_error = repr(error)
                self._closing = False  # close() raises; the sink stays usable and close() may be retried
            # failing while a partition waits to retry a failed write (a pass that skipped it proves nothing)
            self._failing = error is not None or self._files.retrying()
            if self._wal is not None and (self._files.published != published or not self._files.pending_rows()):
                self._truncate_wal()
            if self._deferred_from is None or error is not None:  # a flush covers the batches only in the log
                self._flush_done = max(self._flush_done, flush_target)
            if closing and error is None:
                self._files.remove_empty_directories()
            self._open_files = self._files.open_files()
            self._pending_rows = self._files.pending_rows()
            self._pending_bytes = self._files.pending_bytes()
            self._cond.notify_all()
            return not (closing and error is None and self._deferred_from is None)

    def _process(
        self, pieces: list[tuple[Position | None, Piece]], force: bool, hold_s: float | None = None
    ) -> BaseException | None:
        """Hand what was taken to the files; with `force`, publish everything."""
        now = self._clock()
        self._files.add(pieces, now)
        return self._files.write(now, publish_all=force, hold_s=hold_s)

    def _read_back(self) -> None:
        """Queue the next `buffer_bytes` of the batches only in the log; call with _cond held (no append runs)."""
        assert self._wal is not None and self._deferred_from is not None
        records, following = self._wal.read_from(self._deferred_from, self.buffer_bytes)
        for record in records:
            for table, batch in record.tables.items():
                for piece in split(table, batch):
                    self._filling.append(((record.lsn, 0), piece))
                    self._filling_bytes += piece.batch.nbytes
        self._deferred_from = None if following >= self._wal.next_lsn else following

    def _truncate_wal(self) -> None:
        """Drop the log records whose rows are all in published files; call with _cond held."""
        assert self._wal is not None
        lows = [mark[0] for mark, _ in self._filling if mark is not None]
        if self._deferred_from is not None:
            lows.append(self._deferred_from)
        low = self._files.low_water()
        if low is not None:
            lows.append(low)
        self._wal.truncate(min(lows, default=self._wal.next_lsn))

    def _replay(self) -> None:
        """Queue the log's records again, without the rows already in this writer's files."""
        assert self._wal is not None
        covered: dict[Path, Position | None] = {}
        for record in self._wal.recovered():
            for table, batch in record.tables.items():
                for piece in split(table, conform(table, batch)):
                    directory = piece.directory(self.root)
                    if directory not in covered:
                        covered[directory] = self._files.covered(directory)
                    end = covered[directory]
                    skip = 0
                    if end is not None and record.lsn < end[0]:
                        continue
                    if end is not None and record.lsn == end[0]:
                        skip = end[1]
                    if skip >= piece.batch.num_rows:
                        continue
                    rest = Piece(piece.table, piece.exchange, piece.date, piece.batch.slice(skip)) if skip else piece
                    self._filling.append(((record.lsn, skip), rest))
                    self._filling_bytes += rest.batch.nbytes
                    self._replayed_rows += rest.batch.num_rows
            self.recovered_keys.append((record.source, record.seq))
