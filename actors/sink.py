"""SinkActor: hosts a ParquetSink or QuestDBSink behind an idempotent `xtrader.sinkfront.SinkFront`.

The front's timer flushes every `spec.flush_interval_s` (`pipeline.flush_interval_s`), traffic or not.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import pyarrow as pa

from actors._setup import set_up_process
from xtrader.chaos import OUTAGE_SINKS
from xtrader.clock import Anchor
from xtrader.plan import SinkSpec
from xtrader.sinkfront import SinkFront
from xtrader.streams_table import EventTail


def writer_id(capture: str) -> str:
    """A Parquet writer id unique among the writers of one root: the capture's name plus a random suffix.

    Pass it to the actor's constructor: a restarted actor gets the same id back, and with it its log.
    """
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', capture)}-{uuid.uuid4().hex[:8]}"


def open_sink(spec: SinkSpec, name: str) -> Any:
    """The sink object a SinkSpec describes; `name` is the Parquet writer id."""
    from xtrader.config import ParquetSink as ParquetConfig
    from xtrader.config import QuestDBSink as QuestDBConfig

    config = spec.config
    if isinstance(config, QuestDBConfig):
        from xtrader.sinks.questdb import QuestDBSink

        return QuestDBSink(config.conf.get_secret_value(), config.spill_dir)
    assert isinstance(config, ParquetConfig)
    from xtrader.sinks.parquet import ParquetSink

    rotation = spec.rotation
    return ParquetSink(
        config.root,
        name,
        mode=config.mode or "realtime",
        max_rows=rotation.rows if rotation else None,
        max_bytes=rotation.bytes if rotation else None,
        max_seconds=rotation.seconds if rotation else None,
        row_group_rows=spec.row_group_rows,
        compression=config.compression,
        wal=config.wal != "off",
        wal_sync="batch" if config.wal == "batch" else "os",
        wal_dir=config.wal_dir,
    )


class SinkActor:
    """One sink: `write(source_id, batch_seq, tables)` stores each batch once.

    Args:
        spec: the sink.
        writer: the Parquet writer id (`writer_id(capture)`); None: a new unique one.
    """

    def __init__(self, spec: SinkSpec, writer: str | None = None) -> None:
        set_up_process()  # Arrow IPC arguments, jemalloc, warm-up (`actors._setup`)
        self.kind = spec.kind
        writer = writer or writer_id(spec.kind)
        self.front = SinkFront(open_sink(spec, writer), spec.kind, actor=spec.id, owner=writer)
        self.front.start_timer(spec.flush_interval_s)
        self.events = EventTail()
        self.front.on_event = self.events.add  # the sink's own failing / recovered rows

    def write(
        self,
        source_id: str,
        batch_seq: int,
        tables: dict[str, pa.RecordBatch],
        origin: str = "",
        anchor: Anchor | None = None,
        skipped: tuple[tuple[str, int, int], ...] = (),
    ) -> bool:
        """Store a batch once; `skipped`: (source_id, low, high) seqs its producer will never send."""
        with self.front.lock:  # the events tail too (`recent_events` may run beside a write)
            written = self.front.write(source_id, batch_seq, tables, origin, anchor, skipped)
            if written and "events" in tables:
                self.events.add(tables["events"])
        return written

    def recent_events(self, since: float | None = None) -> pa.Table:
        """The newest `events` rows this sink took (at or after `since`, epoch seconds)."""
        with self.front.lock:  # `actors.METHOD_GROUPS`: may run beside a write
            return self.events.table(since)

    def recent(self, prefix: str) -> dict[str, pa.Table]:
        """Key columns of the trades / bbo rows stored lately from sources starting with `prefix` (a restarted
        arbiter's rebuild, `xtrader.recent`)."""
        return self.front.recent_keys(prefix)

    def stall(self, delay_s: float, duration_s: float) -> None:
        """Fault hook (tests, chaos): every write waits `delay_s` for the next `duration_s` s (`SinkFront.stall`)."""
        self.front.stall(delay_s, duration_s)

    def outage(self, kind: str, duration_s: float) -> bool:
        """Fault hook (chaos): `parquet_unwritable` / `questdb_down` storage for the next `duration_s` s, if this
        sink is the one that fault hits (`xtrader.sinks.outage`); whether it did."""
        outage = getattr(self.front.writer, "outage", None)
        if OUTAGE_SINKS.get(kind) != self.kind or outage is None:
            return False
        outage.start(duration_s)
        return True

    def flush(self) -> None:
        self.front.flush()

    def close(self) -> dict[str, Any]:
        """Flush and close the sink; returns the final stats."""
        self.front.close()
        return self.stats()

    def accepted(self) -> dict[str, Any]:
        """Rows accepted per table and venue, and per origin (`SinkFront.accepted`): cheap to poll."""
        with self.front.lock:  # `actors.METHOD_GROUPS`: may run beside a write
            return self.front.accepted()

    def stats(self) -> dict[str, Any]:
        """The sink's stats; answered beside a backlog of writes (`actors.METHOD_GROUPS`), at most after the write
        in progress."""
        with self.front.lock:
            inner = getattr(self.front.writer, "stats", None)
            # pid: this incarnation of the actor (a restart shows as a new one)
            return {**self.front.stats(), "writer": inner() if callable(inner) else None, "pid": os.getpid()}
