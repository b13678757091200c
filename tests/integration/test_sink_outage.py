"""One sink's storage fails, the other goes on (issue 10: "the Parquet root made unwritable or full", and the
reverse, QuestDB down). Real files on a real small filesystem (a tmpfs mounted for the test; where mounting is
not allowed, a read-only directory for a non-root user, and only as a last resort an ENOSPC injected at the
`publish_file` seam), QuestDB through the ILP receiver.

Checked: a clear error (`failing`), an `events` row when the sink starts failing and one when it works again,
the data kept in the write-ahead log (memory bounded) and then written exactly once; the other sink unaffected.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.integration.ilp_receiver import IlpReceiver
from tests.integration.test_sink_durability import ROWS_PER_BATCH, batch, expected_ids, trade_ids
from xtrader.sinkfront import SinkFront
from xtrader.sinks import files
from xtrader.sinks.parquet import ParquetSink
from xtrader.sinks.questdb import QuestDBSink

BATCHES = 60  # of 500 trades; the strict ILP receiver parses in Python
BUFFER_BYTES = 256 << 10


class Disk:
    """The Parquet root on a small filesystem that can be made full (`ballast`) or read-only, and healed."""

    def __init__(self, root: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.how = how
        self.monkeypatch = monkeypatch
        self.mounted = False
        root.mkdir(parents=True)
        if _run("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)):
            self.mounted = True
            self.method = "tmpfs"
        elif how == "read-only" and os.geteuid() != 0:
            self.method = "chmod"
        else:
            self.method = "injected"  # no way to make a real one here: the seam, as a last resort

    def break_(self) -> None:
        if self.method == "tmpfs" and self.how == "full":
            ballast = self.root / "ballast"
            with open(ballast, "wb", buffering=0) as handle:
                for chunk in (64 << 10, 4 << 10, 1):  # to the last byte
                    with contextlib.suppress(OSError):
                        while True:
                            handle.write(b"\0" * chunk)
        elif self.method == "tmpfs":
            assert _run("mount", "-o", "remount,ro", str(self.root))
        elif self.method == "chmod":
            for directory in [self.root, *(p for p in self.root.rglob("*") if p.is_dir() and ".wal" not in p.parts)]:
                directory.chmod(0o555)
        else:

            def refuse(temporary: Path, final: Path) -> None:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")

            self.monkeypatch.setattr(files, "publish_file", refuse)

    def heal(self) -> None:
        if self.method == "tmpfs" and self.how == "full":
            (self.root / "ballast").unlink()
        elif self.method == "tmpfs":
            assert _run("mount", "-o", "remount,rw", str(self.root))
        elif self.method == "chmod":
            for directory in [self.root, *(p for p in self.root.rglob("*") if p.is_dir())]:
                directory.chmod(0o755)
        else:
            self.monkeypatch.undo()

    def close(self) -> None:
        if self.mounted:
            _run("umount", "-l", str(self.root))


def _run(*command: str) -> bool:
    try:
        return subprocess.run(command, check=False, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(params=["full", "read-only"])
def disk(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    made = Disk(tmp_path / "parquet", request.param, monkeypatch)
    try:
        yield made
    finally:
        if made.method == "chmod":
            made.heal()
        made.close()


@pytest.fixture
def receiver() -> Iterator[IlpReceiver]:
    with IlpReceiver() as running:
        yield running


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {timeout_s} s: {what}"
        time.sleep(0.05)


def events(rows: list[pa.RecordBatch], kind: str) -> list[str]:
    return [
        str(d) for b in rows for k, d in zip(b["kind"].to_pylist(), b["detail"].to_pylist(), strict=True) if k == kind
    ]


def fronts(tmp_path: Path, root: Path, receiver: IlpReceiver) -> tuple[SinkFront, SinkFront, list[pa.RecordBatch]]:
    parquet = ParquetSink(
        root, "w1", max_rows=3_000, row_group_rows=1_000, buffer_bytes=BUFFER_BYTES, wal_dir=tmp_path / "wal"
    )
    questdb = QuestDBSink(receiver.conf(), tmp_path / "spill", fsync=False, backoff_initial_s=0.001, backoff_max_s=0.01)
    rows: list[pa.RecordBatch] = []
    front_p, front_q = SinkFront(parquet, "parquet", retry_s=10), SinkFront(questdb, "questdb", retry_s=10)
    front_p.on_event = front_q.on_event = rows.append
    return front_p, front_q, rows


def quest_ids(receiver: IlpReceiver) -> Counter[tuple[str, str]]:
    return Counter((r.symbols["exchange"], r.fields["trade_id"]) for r in receiver.table("trades"))


def test_an_unwritable_parquet_disk_keeps_the_data_in_the_log_and_questdb_unaffected(
    tmp_path: Path, disk: Disk, receiver: IlpReceiver
) -> None:
    front_p, front_q, rows = fronts(tmp_path, disk.root, receiver)
    parquet = front_p.writer
    assert isinstance(parquet, ParquetSink)
    for n in range(10):  # some files exist before the fault
        assert front_p.write("producer#1", n, {"trades": batch(n)}) and front_q.write(
            "producer#1", n, {"trades": batch(n)}
        )
    front_p.flush()
    disk.break_()
    started = time.monotonic()
    high_water = 0
    for n in range(10, BATCHES):
        # every batch is acknowledged by both sinks: Parquet's once it is in its log
        assert front_p.write("producer#1", n, {"trades": batch(n)})
        assert front_q.write("producer#1", n, {"trades": batch(n)})
        stats = parquet.stats()
        high_water = max(high_water, stats["queue_bytes"] + parquet._pending_bytes)
        if n % 10 == 0:
            front_p.tick(0.05)
    # QuestDB took everything meanwhile
    assert quest_ids(receiver) == expected_ids(BATCHES)
    # Parquet: a clear error, an events row, the rows in the log, memory bounded
    wait_until(lambda: parquet.failing is not None, what="the Parquet writer reports its failure")
    reason = parquet.failing
    assert reason is not None and ("No space left" in reason or "Read-only" in reason or "Permission" in reason), reason
    front_p.tick(0.05)
    failing = events(rows, "error")
    assert failing and "parquet sink failing" in failing[0] and "write-ahead log" in failing[0], failing
    stats = parquet.stats()
    assert stats["log_only_batches"] > 0, stats
    assert high_water <= 2 * BUFFER_BYTES, high_water
    on_disk = trade_ids(disk.root)
    assert sum(on_disk.values()) < BATCHES * ROWS_PER_BATCH
    print(
        f"\n{disk.method} ({disk.how}) for {time.monotonic() - started:.1f} s: {reason}; {stats['log_only_batches']}"
        f" batches in the log only, {sum(on_disk.values())} rows on disk"
    )
    # writing works again: every row written exactly once, and a `recovered` row
    disk.heal()

    def caught_up() -> bool:
        front_p.tick(0.05)
        return parquet.failing is None and parquet.stats()["log_only_batches"] > 0 and _flushed(front_p)

    wait_until(caught_up, what="the Parquet sink catches up from its log")
    assert trade_ids(disk.root) == expected_ids(BATCHES)
    assert any("parquet sink writes again" in d for d in events(rows, "recovered"))
    front_p.close()
    front_q.close()
    # the sink's own events rows are stored with its data
    stored = pa.dataset.dataset(disk.root / "events", format="parquet", partitioning="hive").to_table()
    kinds = Counter(stored.column("kind").to_pylist())
    assert kinds["error"] >= 1 and kinds["recovered"] >= 1, kinds
    assert trade_ids(disk.root) == expected_ids(BATCHES)


def _flushed(front: SinkFront) -> bool:
    try:
        front.flush()
    except Exception:
        return False
    return True


def test_questdb_down_leaves_parquet_unaffected_and_its_rows_arrive_once_it_is_back(
    tmp_path: Path, receiver: IlpReceiver
) -> None:
    front_p, front_q, rows = fronts(tmp_path, tmp_path / "parquet", receiver)
    questdb = front_q.writer
    assert isinstance(questdb, QuestDBSink)
    for n in range(10):
        assert front_p.write("producer#1", n, {"trades": batch(n)}) and front_q.write(
            "producer#1", n, {"trades": batch(n)}
        )
    receiver.stop_listening()
    for n in range(10, BATCHES):
        assert front_p.write("producer#1", n, {"trades": batch(n)})
        assert front_q.write("producer#1", n, {"trades": batch(n)})
    # Parquet unaffected: everything readable after a flush, while QuestDB is down
    front_p.flush()
    assert trade_ids(tmp_path / "parquet") == expected_ids(BATCHES)
    assert questdb.failing is not None and "spilled" in questdb.failing
    failing = events(rows, "error")
    assert failing and "questdb sink failing" in failing[0] and "spill" in failing[0], failing
    assert quest_ids(receiver) == expected_ids(10)  # what it took before it went down
    # QuestDB back: the spill is replayed by the periodic flush, every row arrives once
    receiver.start_listening()
    wait_until(lambda: (front_q.tick(0.05), questdb.failing is None)[1], what="the spill replayed")
    assert quest_ids(receiver) == expected_ids(BATCHES)
    assert any("questdb sink writes again" in d for d in events(rows, "recovered"))
    # and the outage's events rows are in QuestDB's events table too
    kinds = Counter(r.symbols["kind"] for r in receiver.table("events"))
    assert kinds["error"] >= 1 and kinds["recovered"] >= 1, kinds
    front_p.close()
    front_q.close()
