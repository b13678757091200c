"""Write-ahead log of a sink: a batch is acknowledged only once it is here, fsync'd.

Layout: `DIR/<first_lsn:020d>.wal` segments. Each open starts a new segment, so
appends never follow a torn record. A record is one producer batch (several
tables), numbered by a log sequence number (`lsn`, increasing, never reused):

    header   magic b"XTW1" | payload length u32 | crc32(payload) u32 | lsn u64   (little endian)
    payload  meta length u32 | meta JSON {"source", "seq", "tables": [[name, bytes], ...], "skipped"?}
             | one Arrow IPC stream (schema + batch + end) per table

`skipped` (optional): `[[source, low, high], ...]`, batch seqs the producer says it will never send
(`xtrader.seen`).

A record whose header or payload is cut short, or whose CRC does not match,
is the torn tail of a crash: it (and anything after it in its segment) is
ignored: its `append()` never returned, so it was never acknowledged.

`truncate(low)` deletes the segments whose records all have `lsn < low` (the
caller's data up to `low` is durable elsewhere); the active segment is rotated
first when everything in it is below `low`.

Idempotence across restarts: the log knows the (source, seq) of every batch it
took (`seen_state()`, an `xtrader.seen.SeenState`): the keys of the records on
disk plus `DIR/seen.json`, which `truncate()` saves (atomically, fsync'd)
before it deletes a segment, so the keys of a truncated batch are never lost.

Sync policy (`sync`): `"batch"` fsyncs every append before it returns (the
record survives a power loss); `"os"` returns once the record is written to
the kernel (it survives the death of the process: SIGKILL, OOM kill,
`ray.kill`) and fsyncs on `sync()`, which the sink's host calls every
`pipeline.flush_interval_s`. See benchmarks/RESULTS.md for what each costs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa

from xtrader.seen import SeenState

MAGIC = b"XTW1"
_HEADER = struct.Struct("<4sIIQ")
_META = struct.Struct("<I")
_NAME_DIGITS = 20
Sync = Literal["batch", "os"]
SYNCS: tuple[Sync, ...] = ("batch", "os")


@dataclass(frozen=True)
class Record:
    """One logged batch."""

    lsn: int
    source: str
    seq: int
    tables: dict[str, pa.RecordBatch]
    skipped: tuple[tuple[str, int, int], ...] = ()
    origin: str = ""


Skipped = tuple[tuple[str, int, int], ...]
SEEN_FILE = "seen.json"
#: rows per origin (`rest`...), table and exchange of every batch ever logged (saved before a truncation)
ORIGINS_FILE = "origins.json"
#: origin -> table -> exchange -> rows
Origins = dict[str, dict[str, dict[str, int]]]


def encode(
    lsn: int, source: str, seq: int, tables: dict[str, pa.RecordBatch], skipped: Skipped = (), origin: str = ""
) -> bytes:
    """One framed record."""
    streams = []
    for batch in tables.values():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        streams.append(sink.getvalue())
    fields: dict[str, object] = {
        "source": source,
        "seq": seq,
        "tables": [[t, s.size] for t, s in zip(tables, streams, strict=True)],
    }
    if skipped:
        fields["skipped"] = [list(entry) for entry in skipped]
    if origin:
        fields["origin"] = origin
    meta = json.dumps(fields).encode()
    payload = b"".join([_META.pack(len(meta)), meta, *(s.to_pybytes() for s in streams)])
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload), lsn) + payload


def _decode(lsn: int, payload: bytes) -> Record:
    (meta_size,) = _META.unpack_from(payload)
    meta = json.loads(payload[_META.size : _META.size + meta_size])
    offset = _META.size + meta_size
    tables: dict[str, pa.RecordBatch] = {}
    for table, size in meta["tables"]:
        reader = pa.ipc.open_stream(pa.py_buffer(payload[offset : offset + size]))
        tables[table] = reader.read_next_batch()
        offset += size
    skipped = tuple((str(src), int(low), int(high)) for src, low, high in meta.get("skipped", ()))
    return Record(lsn, meta["source"], int(meta["seq"]), tables, skipped, str(meta.get("origin", "")))


def read_segment(path: Path) -> tuple[list[Record], bool]:
    """The intact records of one segment, and whether a torn tail was found (and ignored)."""
    data = path.read_bytes()
    records: list[Record] = []
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            return records, True
        magic, size, crc, lsn = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start : start + size]
        if magic != MAGIC or len(payload) < size or zlib.crc32(payload) != crc:
            return records, True
        try:
            records.append(_decode(lsn, payload))
        except (ValueError, KeyError, pa.ArrowException):  # a CRC collision on garbage: treat as torn
            return records, True
        offset = start + size
    return records, False


class WriteAheadLog:
    """Append-only, fsync'd log of batches in `directory`; thread-safe.

    Args:
        directory: this sink's log directory (one writer only).
        fsync: fsync at all (off only in tests).
        sync: `"batch"` (fsync every append) or `"os"` (fsync on `sync()`); see the module doc.
        segment_bytes: rotate the active segment beyond this size.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        fsync: bool = True,
        sync: Sync = "batch",
        segment_bytes: int = 64 << 20,
    ) -> None:
        if sync not in SYNCS:
            raise ValueError(f"sync must be one of {SYNCS}, got {sync!r}")
        self.directory = Path(directory)
        self.fsync = fsync
        self.sync_each = fsync and sync == "batch"
        self._dirty = False
        self._broken = False
        self.segment_bytes = segment_bytes
        self.torn_records = 0
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segments: list[tuple[int, Path]] = sorted(
            (int(path.name[:_NAME_DIGITS]), path) for path in self.directory.glob("*.wal") if path.name[:-4].isdigit()
        )
        for path in self.directory.glob(".*.tmp"):
            path.unlink()
        recovered = list(self._read_all())
        self._seen = SeenState.load(self.directory / SEEN_FILE)
        self._origins: Origins = _load_origins(self.directory / ORIGINS_FILE)
        for record in recovered:
            self._remember(record.source, record.seq, record.skipped)
            self._count_origin(record.origin, record.tables)
        last = max((r.lsn for r in recovered), default=-1)
        start = max([last + 1] + [first for first, _ in self._segments])
        self._recovered = recovered
        self.next_lsn = start
        self._bytes = sum(path.stat().st_size for _, path in self._segments)
        self._handle = self._open_segment(start)

    def recovered(self) -> list[Record]:
        """The records found at open (oldest first): unacknowledged by nothing durable yet."""
        return list(self._recovered)

    def seen_state(self) -> SeenState:
        """The (source, seq) of every batch logged, truncated ones included (a copy)."""
        with self._lock:
            return self._seen.copy()

    def origin_rows(self) -> Origins:
        """Rows per origin, table and exchange of every batch logged with an origin, truncated ones included."""
        with self._lock:
            return {o: {t: dict(e) for t, e in tables.items()} for o, tables in self._origins.items()}

    def _count_origin(self, origin: str, tables: dict[str, pa.RecordBatch]) -> None:
        if not origin:
            return
        counts = self._origins.setdefault(origin, {})
        for table, batch in tables.items():
            if batch.num_rows:
                per = counts.setdefault(table, {})
                exchange = _exchange(batch)
                per[exchange] = per.get(exchange, 0) + batch.num_rows

    def _remember(self, source: str, seq: int, skipped: Skipped) -> None:
        if source and seq >= 0:
            self._seen.add(source, seq)
        self._seen.skip(skipped)

    def append(
        self, source: str, seq: int, tables: dict[str, pa.RecordBatch], skipped: Skipped = (), origin: str = ""
    ) -> int:
        """Log one batch durably; its lsn.

        Raises:
            OSError: the log could not be written (disk full...): the batch is not logged, and the
                next append starts a new segment, so a partly written record never hides later ones.
        """
        with self._lock:
            lsn = self.next_lsn
            frame = encode(lsn, source, seq, tables, skipped, origin)
            if self._broken or (self._handle.tell() and self._handle.tell() + len(frame) > self.segment_bytes):
                self._rotate()
            try:
                view = memoryview(frame)
                while view:  # unbuffered: once write() returns, the bytes are in the kernel (survive this process)
                    view = view[self._handle.write(view) or 0 :]
                if self.sync_each:
                    os.fsync(self._handle.fileno())
            except OSError:
                self._broken = True
                raise
            self._dirty = self.fsync and not self.sync_each
            self.next_lsn = lsn + 1
            self._bytes += len(frame)
            self._remember(source, seq, skipped)
            self._count_origin(origin, tables)
            return lsn

    def read_from(self, lsn: int, max_bytes: int) -> tuple[list[Record], int]:
        """The intact records with lsn >= `lsn`, oldest first, until about `max_bytes` of batches; and the lsn
        to go on from (`next_lsn` once every record was read)."""
        with self._lock:
            out: list[Record] = []
            size = 0
            following = lsn
            for index, (_, path) in enumerate(self._segments):
                if index + 1 < len(self._segments) and self._segments[index + 1][0] <= lsn:
                    continue  # every record of this segment is below `lsn`
                records, _ = read_segment(path)
                for record in records:
                    if record.lsn < following:
                        continue
                    out.append(record)
                    following = record.lsn + 1
                    size += sum(batch.nbytes for batch in record.tables.values())
                    if size >= max_bytes:
                        return out, following
            return out, max(following, self.next_lsn)

    def sync(self) -> None:
        """fsync what was appended since the last fsync (a no-op with `sync="batch"`)."""
        with self._lock:
            if self._dirty:
                os.fsync(self._handle.fileno())
                self._dirty = False

    def truncate(self, low: int) -> int:
        """Delete every segment whose records all have lsn < `low`; the number deleted."""
        with self._lock:
            if low >= self.next_lsn and self._handle.tell():
                self._rotate()
            deleted = 0
            if len(self._segments) > 1 and self._segments[1][0] <= low:  # keys first, then the records
                self._seen.save(self.directory / SEEN_FILE, fsync=self.fsync)
                _save_origins(self.directory / ORIGINS_FILE, self._origins, self.fsync)
            while len(self._segments) > 1 and self._segments[1][0] <= low:
                _, path = self._segments.pop(0)
                self._bytes -= path.stat().st_size
                path.unlink()
                deleted += 1
            if deleted and self.fsync:
                _sync_directory(self.directory)
            return deleted

    @property
    def bytes(self) -> int:
        """Bytes on disk (all segments)."""
        return self._bytes

    def close(self) -> None:
        with self._lock:
            if self._dirty:
                os.fsync(self._handle.fileno())
                self._dirty = False
            self._handle.close()

    def _read_all(self) -> Iterator[Record]:
        for _, path in self._segments:
            records, torn = read_segment(path)
            self.torn_records += torn
            yield from records

    def _rotate(self) -> None:
        if self._dirty and not self._broken:
            os.fsync(self._handle.fileno())
            self._dirty = False
        with contextlib.suppress(OSError):
            self._handle.close()
        self._handle = self._open_segment(self.next_lsn)
        self._broken = False

    def _open_segment(self, first: int) -> io.FileIO:
        path = self.directory / f"{first:0{_NAME_DIGITS}d}.wal"
        # a segment reused here holds no intact record (else `first` would be past it): start it afresh
        # unbuffered: a failed write leaves nothing behind to be written later
        handle = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by _rotate / close
        if not self._segments or self._segments[-1][1] != path:
            self._segments.append((first, path))
            if self.fsync:
                _sync_directory(self.directory)
        return handle


def _exchange(batch: pa.RecordBatch) -> str:
    """The venue of a batch (one per batch: the first row's); "" without an exchange column."""
    if "exchange" not in batch.schema.names or not batch.num_rows:
        return ""
    value = batch.column("exchange")[0]
    return str(value.as_py())


def _load_origins(path: Path) -> Origins:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        str(o): {str(t): {str(e): int(n) for e, n in per.items()} for t, per in tables.items()}
        for o, tables in data.items()
    }


def _save_origins(path: Path, origins: Origins, fsync: bool) -> None:
    """Written atomically: a temporary file, fsync'd, renamed over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(origins, handle)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)
    if fsync:
        _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
