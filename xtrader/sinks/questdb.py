"""QuestDB sink: the official `questdb` client over ILP/HTTP, one request per batch, spill while down.

- One QuestDB table per stored schema (`<prefix>trades`, ...), the mapping in
  `xtrader.sinks.ilp`.
- `protocol_version` is always explicit in the client configuration (1 by
  default: text floats, every QuestDB version) so the client never has to ask
  `/settings`. Protocol 1 writes the `receive_ts` column in microseconds (the
  `t` suffix); protocol 2 (QuestDB >= 9) keeps nanoseconds and binary floats.
- One batch = one HTTP request, flushed `transactional` (a batch holds one
  table): QuestDB commits it whole or not at all, so a retry cannot leave half
  a batch behind.
- The client empties its own buffer when a flush fails, so the sink encodes
  into a Buffer it owns, flushes it with `clear=False`, and keeps the batch.
- Failure: retry with capped exponential backoff and jitter; after `attempts`
  tries the batch goes to the spill (`xtrader.sinks.spill`), and so does every
  later batch until the spill is empty, so that nothing overtakes it. The
  spill is replayed in order, oldest first, and a file is deleted only after
  QuestDB acknowledged it. A server reply that retrying cannot fix (400
  malformed data, 413, 415) sends the batch to `spill_dir/rejected/` instead.
- At-least-once: a request that times out after QuestDB committed it is sent
  again, and so is a spilled batch whose replay was committed just before a
  crash (the file is deleted after QuestDB's answer). The tables are created
  at start with `DEDUP UPSERT KEYS` (`xtrader.sinks.ddl`), so a batch sent
  twice is stored once.
- Idempotence across restarts: the front's seen state (`xtrader.seen`) is
  saved in `spill_dir/seen.json` on every periodic flush and at close
  (`save_seen`) and read back at start (`recovered_seen`); a retry of a batch
  acknowledged since the last save is sent again, and the dedup keys absorb it.
- Acknowledged means durable without a log of its own: `write()` returns only
  once QuestDB committed the batch or it is in an fsync'd spill file, so the
  spill is this sink's write-ahead log (replayed on restart and by the host's
  periodic `flush()`, deleted once committed).

Not thread-safe: one sink per actor.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pyarrow as pa
from questdb import QuestDBError, QuestDBErrorCode, Sender

from xtrader import schema
from xtrader.errors import ConfigError
from xtrader.histogram import Histogram
from xtrader.retry import backoff
from xtrader.seen import SeenState
from xtrader.sinks import ilp
from xtrader.sinks.common import Durations, SinkClosed, add_counts, conform, rows_by_exchange
from xtrader.sinks.ddl import DDLError, Exec, statements
from xtrader.sinks.outage import Outage
from xtrader.sinks.spill import Spill

log = logging.getLogger(__name__)

#: QuestDB's JSON error codes that mean "this batch will never be accepted as it is"
_REJECTED = re.compile(r"\bcode: (invalid|request too large|not supported)\b")
_PREFIX = re.compile(r"^[A-Za-z0-9_]*$")
#: errors raised while encoding a row: the data itself is unusable
_ENCODE_ERRORS = (ValueError, TypeError, OverflowError)


class Outcome(enum.Enum):
    """What became of one delivery attempt of a batch."""

    DELIVERED = "delivered"
    REJECTED = "rejected"
    FAILED = "failed"


def client_conf(conf: str, protocol_version: int) -> str:
    """The configuration handed to the client: HTTP only, explicit protocol version, no client retry.

    Retries are the sink's (counted, with jitter, then spilled), so the client's
    own `retry_timeout` defaults to 0 here unless the configuration sets it.

    Raises:
        ConfigError: not `http::`/`https::`, or an unusable `protocol_version`.
    """
    scheme = conf.split("::", 1)[0]
    if scheme not in ("http", "https") or "::" not in conf:
        raise ConfigError(f"QuestDB conf must use ILP over HTTP (http:: or https::), got scheme {scheme!r}")
    if protocol_version not in (1, 2):
        raise ConfigError(f"protocol_version must be 1 or 2, got {protocol_version!r}")
    keys = dict(item.split("=", 1) for item in conf.split("::", 1)[1].split(";") if "=" in item)
    if keys.get("protocol_version", str(protocol_version)) not in ("1", "2"):
        raise ConfigError(f"conf protocol_version must be 1 or 2 (never auto), got {keys['protocol_version']!r}")
    out = conf if conf.endswith(";") else conf + ";"
    if "protocol_version" not in keys:
        out += f"protocol_version={protocol_version};"
    if "retry_timeout" not in keys:
        out += "retry_timeout=0;"
    return out


class QuestDBSink:
    """Writes stored-table batches to QuestDB, spilling to `spill_dir` while it is unreachable.

    Args:
        conf: client configuration, e.g. `http::addr=localhost:9000;`.
        spill_dir: directory of the local spill (created; survives restarts).
        table_prefix: prepended to every table name (`xt_` -> `xt_trades`).
        protocol_version: ILP version when `conf` does not set one (1 or 2).
        attempts: tries per batch before it is spilled.
        backoff_initial_s, backoff_max_s: the retry delays (also between spill replay probes).
        replay_batches_per_write: spilled batches resent at most per `write` call, so that
            one call never blocks for long while a big spill drains.
        fsync: fsync spill files (off only in tests).
        create_tables: create every table with its upsert keys before its first batch
            (`xtrader.sinks.ddl`; tried at start, and again before a batch while QuestDB is unreachable).
        sleep, clock, rng: injectable for tests.

    Raises:
        ConfigError: bad conf, prefix or protocol version.
    """

    def __init__(
        self,
        conf: str,
        spill_dir: str | os.PathLike[str],
        *,
        table_prefix: str = "",
        protocol_version: int = 1,
        attempts: int = 3,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 5.0,
        replay_batches_per_write: int = 100,
        fsync: bool = True,
        create_tables: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not _PREFIX.match(table_prefix):
            raise ConfigError(f"table_prefix must match [A-Za-z0-9_]*, got {table_prefix!r}")
        if attempts < 1:
            raise ConfigError(f"attempts must be >= 1, got {attempts}")
        self.conf = client_conf(conf, protocol_version)
        self.table_prefix = table_prefix
        self.attempts = attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.replay_batches_per_write = replay_batches_per_write
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._spill = Spill(spill_dir, fsync=fsync)
        #: an injected outage (chaos `questdb_down_s`): every send fails meanwhile, as if QuestDB were unreachable
        self.outage = Outage(clock)
        self._seen_path = self._spill.directory / "seen.json"
        self._fsync = fsync
        try:
            self._sender = Sender.from_conf(self.conf)
            self._sender.establish()  # type: ignore[no-untyped-call]
        except QuestDBError as exc:
            raise ConfigError(f"QuestDB client refused the configuration: {exc}") from exc
        self._buffer = self._sender.new_buffer()
        self._next_probe = 0.0
        self._probe_delays: Iterator[float] | None = None
        self._rows: dict[str, dict[str, int]] = {}
        self._durations = Durations()
        self._counters = dict.fromkeys(
            (
                "batches",
                "retries",
                "failures",
                "spilled",
                "replayed",
                "rejected_batches",
                "rejected_rows",
                "encode_errors",
                "ddl_errors",
            ),
            0,
        )
        self._last_error: str | None = None
        self._closed = False
        self._exec = Exec(self.conf) if create_tables else None
        self._ddl_pending: set[str] = set(schema.TABLES) if create_tables else set()
        for table in sorted(self._ddl_pending):
            if not self._ensure_table(table):
                break  # unreachable: each table is tried again before its first batch

    # public API -------------------------------------------------------------------

    def write(self, table: str, batch: pa.RecordBatch) -> None:
        """Deliver one batch of stored table `table` (or spill it); returns once it is safe.

        Raises:
            ValueError: unknown table or a batch that does not fit its schema.
            SinkError: the sink is closed.
        """
        if self._closed:
            raise SinkClosed("QuestDBSink is closed")
        batch = conform(table, batch)
        if batch.num_rows == 0:
            return
        if len(self._spill):
            # never let a new batch overtake the spilled ones
            self._spill.append(table, batch)
            self._counters["spilled"] += 1
            self._replay(self.replay_batches_per_write, force=False)
            return
        outcome, reason = self._deliver(table, batch, self.attempts)
        if outcome is Outcome.REJECTED:
            self._spill.reject_batch(table, batch, reason)
        elif outcome is Outcome.FAILED:
            self._spill.append(table, batch)
            self._counters["spilled"] += 1
            self._schedule_probe()

    @property
    def failing(self) -> str | None:
        """Why batches wait in the spill (QuestDB unreachable) while they do; None once it is empty."""
        if not len(self._spill):
            return None
        return f"QuestDB unreachable ({self._last_error}): {len(self._spill)} batches spilled"

    def recovered_seen(self) -> SeenState:
        """The seen state saved by the last `save_seen` on this spill directory (empty if none)."""
        try:
            return SeenState.load(self._seen_path)
        except (OSError, ValueError) as exc:  # never half written (atomic save); a foreign file: start empty
            self._last_error = f"unreadable {self._seen_path}: {exc!r}"
            return SeenState()

    def save_seen(self, state: SeenState) -> None:
        """Save the front's seen state next to the spill (atomically, fsync'd)."""
        state.save(self._seen_path, fsync=self._fsync)

    def flush(self) -> None:
        """Try now to replay the whole spill, in order (stops at the first failure).

        Batches are delivered as they are written; only the spill needs this. An idle sink
        replays nothing by itself, so its host calls `flush()` now and then.
        """
        self._replay(len(self._spill), force=True)

    def close(self) -> None:
        """Replay what can be replayed and close the client; the rest stays spilled on disk."""
        if self._closed:
            return
        self.flush()
        self._sender.close(flush=False)
        if self._exec is not None:
            self._exec.close()
        self._closed = True

    def stats(self) -> dict[str, Any]:
        """Counters and gauges.

        Keys: `rows` (delivered, per table and exchange), `batches` (delivered), `retries`,
        `failures` (failed requests), `spilled` / `replayed` (batches, ever), `rejected_batches`,
        `rejected_rows`, `encode_errors`, `ddl_errors` (table statements QuestDB refused: that table
        may lack its upsert keys, see `last_error`), `spill_depth` / `spill_rows` (waiting now),
        `flush_p50_ms` / `flush_p99_ms` (successful requests), `last_error`.
        """
        return {
            "rows": {table: dict(per) for table, per in self._rows.items()},
            **self._counters,
            "spill_depth": len(self._spill),
            "spill_rows": self._spill.rows(),
            "flush_p50_ms": self._durations.percentile_ms(0.50),
            "flush_p99_ms": self._durations.percentile_ms(0.99),
            "last_error": self._last_error,
        }

    def flush_times(self) -> Histogram:
        """Durations of the successful requests (one batch each), ns; a copy."""
        return self._durations.histogram.copy()

    def table_name(self, table: str) -> str:
        return self.table_prefix + table

    # delivery ---------------------------------------------------------------------------

    def _deliver(self, table: str, batch: pa.RecordBatch, attempts: int) -> tuple[Outcome, str]:
        """Send one batch with up to `attempts` tries; the batch is only ever cleared from our side."""
        reason = self._encode(table, batch)
        if reason:
            return self._rejected(batch, reason)
        delays = backoff(self.backoff_initial_s, self.backoff_max_s, rng=self._rng)
        for attempt in range(attempts):
            if not self._ensure_table(table):  # its upsert keys first, or a resend would duplicate rows
                self._counters["failures"] += 1
                if attempt + 1 < attempts:
                    self._counters["retries"] += 1
                    self._sleep(next(delays))
                continue
            started = time.perf_counter()
            try:
                if self.outage.active:  # injected (chaos): what the client raises when it cannot connect
                    raise QuestDBError(QuestDBErrorCode.SocketError, "Could not connect (injected: questdb_down_s)")
                self._sender.flush(self._buffer, clear=False, transactional=True)
            except QuestDBError as exc:
                if exc.code == QuestDBErrorCode.ServerFlushError and _REJECTED.search(str(exc)):
                    return self._rejected(batch, str(exc))
                self._counters["failures"] += 1
                self._last_error = str(exc)
                if attempt + 1 < attempts:
                    self._counters["retries"] += 1
                    self._sleep(next(delays))
                continue
            self._durations.add(time.perf_counter() - started)
            self._counters["batches"] += 1
            add_counts(self._rows, table, rows_by_exchange(batch))
            return Outcome.DELIVERED, ""
        return Outcome.FAILED, self._last_error or ""

    def _ensure_table(self, table: str) -> bool:
        """Create `table` with its upsert keys once; False while QuestDB cannot be reached."""
        if table not in self._ddl_pending or self._exec is None:
            return True
        for statement in statements(table, self.table_name(table)):
            try:
                self._exec.run(statement)
            except httpx.HTTPError as exc:
                self._last_error = f"creating {self.table_name(table)}: {exc!r}"
                return False
            except DDLError as exc:  # refused for good: the batches still go in, without the keys
                self._counters["ddl_errors"] += 1
                self._last_error = str(exc)
                log.error(
                    "QuestDB table %s may lack its upsert keys (rows sent twice would be stored twice): %s",
                    self.table_name(table),
                    exc,
                )
                break
        self._ddl_pending.discard(table)
        return True

    def _encode(self, table: str, batch: pa.RecordBatch) -> str:
        """Fill our buffer with `batch`; on failure the reason ("" on success)."""
        encoders = [ilp.encode] if ilp.encode is ilp.encode_rows else [ilp.encode, ilp.encode_rows]
        reason = ""
        for encoder in encoders:
            self._buffer.clear()  # type: ignore[no-untyped-call]
            try:
                encoder(self._buffer, self.table_name(table), table, batch)
            except (QuestDBError, *_ENCODE_ERRORS) as exc:
                # a row-by-row retry tells a dataframe-path quirk from data that cannot be written
                reason = f"could not encode: {exc!r}"
                self._counters["encode_errors"] += 1
                continue
            return ""
        self._buffer.clear()  # type: ignore[no-untyped-call]
        return reason

    def _rejected(self, batch: pa.RecordBatch, reason: str) -> tuple[Outcome, str]:
        self._counters["rejected_batches"] += 1
        self._counters["rejected_rows"] += batch.num_rows
        self._last_error = reason
        return Outcome.REJECTED, reason

    def _replay(self, limit: int, force: bool) -> None:
        """Resend spilled batches oldest first, one try each, until one fails or `limit` is reached."""
        if not force and self._clock() < self._next_probe:
            return
        for entry in self._spill.entries()[:limit]:
            try:
                batch = self._spill.read(entry)
            except (OSError, pa.ArrowException) as exc:
                # a damaged spill file must not block the queue forever
                self._spill.reject(entry, f"unreadable spill file: {exc!r}")
                self._counters["rejected_batches"] += 1
                continue
            outcome, reason = self._deliver(entry.table, batch, attempts=1)
            if outcome is Outcome.DELIVERED:
                self._spill.remove(entry)
                self._counters["replayed"] += 1
            elif outcome is Outcome.REJECTED:
                self._spill.reject(entry, reason)
            else:
                self._schedule_probe()
                return
        if not len(self._spill):
            self._probe_delays = None

    def _schedule_probe(self) -> None:
        """The next replay attempt, further away after each failed one (capped, jittered)."""
        if self._probe_delays is None:
            self._probe_delays = backoff(self.backoff_initial_s, self.backoff_max_s, rng=self._rng)
        self._next_probe = self._clock() + next(self._probe_delays)
