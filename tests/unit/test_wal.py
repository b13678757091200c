"""The sink's write-ahead log: framing, torn tails, replay order, truncation."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from xtrader.sinks.wal import WriteAheadLog, read_segment


def tables(n: int) -> dict[str, pa.RecordBatch]:
    return {
        "trades": pa.record_batch({"id": pa.array([n, n + 1], pa.int64()), "s": pa.array(["a", "b"])}),
        "bbo": pa.record_batch({"px": pa.array([float(n)])}),
    }


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def test_records_come_back_in_order_with_their_keys_and_tables(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, fsync=False)
    assert [log.append("src#1", seq, tables(seq)) for seq in range(5)] == [0, 1, 2, 3, 4]
    log.close()
    again = WriteAheadLog(tmp_path, fsync=False)
    records = again.recovered()
    assert [(r.lsn, r.source, r.seq) for r in records] == [(i, "src#1", i) for i in range(5)]
    assert all(r.tables["trades"].equals(tables(r.seq)["trades"]) for r in records)
    assert all(r.tables["bbo"].equals(tables(r.seq)["bbo"]) for r in records)
    assert again.append("src#2", 0, tables(9)) == 5  # numbering goes on, never reused


def test_a_torn_tail_is_detected_and_ignored(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, fsync=False)
    for seq in range(3):
        log.append("s", seq, tables(seq))
    log.close()
    [segment] = segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # the crash cut the last record short
    again = WriteAheadLog(tmp_path, fsync=False)
    assert [r.seq for r in again.recovered()] == [0, 1]
    assert again.torn_records == 1
    assert again.append("s", 2, tables(2)) == 2  # the torn record was never acknowledged: its lsn is free
    again.close()
    third = WriteAheadLog(tmp_path, fsync=False)
    assert [(r.lsn, r.seq) for r in third.recovered()] == [(0, 0), (1, 1), (2, 2)]


def test_a_corrupt_record_ends_its_segment(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, fsync=False)
    for seq in range(3):
        log.append("s", seq, tables(seq))
    log.close()
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the second record
    segment.write_bytes(bytes(data))
    records, torn = read_segment(segment)
    assert torn and [r.seq for r in records] == [0]


def test_truncation_drops_only_segments_wholly_below_the_mark(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, fsync=False, segment_bytes=1)  # one record per segment
    for seq in range(6):
        log.append("s", seq, tables(seq))
    assert log.truncate(3) == 3
    log.close()
    assert [r.lsn for r in WriteAheadLog(tmp_path, fsync=False).recovered()] == [3, 4, 5]


def test_truncating_everything_keeps_the_numbering(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, fsync=False)
    for seq in range(4):
        log.append("s", seq, tables(seq))
    log.truncate(log.next_lsn)
    assert log.bytes == 0
    log.close()
    again = WriteAheadLog(tmp_path, fsync=False)
    assert again.recovered() == []
    assert again.append("s", 4, tables(4)) == 4


def test_sync_policy_batch_fsyncs_each_append_and_os_on_sync(tmp_path: Path, monkeypatch: Any) -> None:
    import os

    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    per_batch = WriteAheadLog(tmp_path / "batch", sync="batch")
    calls.clear()
    for seq in range(3):
        per_batch.append("s", seq, tables(seq))
    assert len(calls) == 3
    on_sync = WriteAheadLog(tmp_path / "os", sync="os")
    calls.clear()
    for seq in range(3):
        on_sync.append("s", seq, tables(seq))
    assert calls == []
    on_sync.sync()
    on_sync.sync()  # nothing new: no second fsync
    assert len(calls) == 1


class FailingOnce:
    """A segment file whose next write stores half the bytes, then fails like a full disk."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.failed = False

    def write(self, data: Any) -> int:
        if not self.failed:
            self.failed = True
            self.handle.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def test_a_failed_append_hides_no_later_record(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path, fsync=False)
    log.append("s", 0, tables(0))
    log._handle = FailingOnce(log._handle)  # type: ignore[assignment]
    with pytest.raises(OSError):
        log.append("s", 1, tables(1))
    assert log.append("s", 1, tables(1)) == 1  # the retry: a new segment, same lsn (the failed one was never logged)
    log.append("s", 2, tables(2))
    log.close()
    assert [(r.lsn, r.seq) for r in WriteAheadLog(tmp_path, fsync=False).recovered()] == [(0, 0), (1, 1), (2, 2)]
