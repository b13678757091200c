"""Whole-batch arbitration for a stream captured over several connections.

`xtrader.arbiter.Arbiter` decides per key; `BatchArbiter` applies it to the
batches a connector emits (`xtrader.batch.Batches`) and returns the rows that
won. Keys (`UpdateKeys`, also used by `xtrader verify`) are the same on every
connection carrying the stream:

- l2: one key per message, (symbol, seq, prev_seq, first_seq, checksum); a
  duplicate message loses all of its level rows, so `l2` and `l2_messages`
  stay consistent (row i of a message batch owns bid_rows + ask_rows rows);
- trades: (symbol, trade_id);
- bbo: (symbol, seq) when the venue publishes a sequence, else
  (symbol, exchange_ts, bid, bid size, ask, ask size, n), n counting how often
  the connection changed to that quote at that exchange time: A -> B -> A in
  one ms is three updates (n = 1, 1, 2), while A -> A (the same frame resent:
  a quote stream only sends changes) is one; the n-th A of another connection
  is the copy of the n-th A.

Events are per connection and always kept. Rotation: every `rotation_s`
seconds the connection that won least is reported (the caller replaces it).

Skew: a connection may deliver far later than its partner (a backlog in its
socket or its actors; a reconnected partner that went live meanwhile). Each
connection's newest exchange time is tracked, and while the connections that
delivered within the last TTL are `skew` apart, keys are kept for TTL + skew
(`Arbiter.grace_ns`, `skew_ms` in the stats): the late copies are still found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xtrader import metrics
from xtrader.arbiter import Arbiter
from xtrader.batch import Batches
from xtrader.update_ids import row_ids


@dataclass
class BatchArbiterStats:
    """Rows kept and dropped per table, and message wins / duplicates per connection."""

    kept_rows: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicate_rows: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates_by_connection: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    rotations: int = 0


class BatchArbiter:
    """First arrival wins, per key, across the connections of one stream.

    Args:
        capacity: keys remembered per table kind (LRU).
        ttl_ns: a key older than this is forgotten (0: never).
        rotation_s: report the least-winning connection this often (None: never).
        min_win_share: ... only when its share of the period's wins is below this.
    """

    def __init__(
        self,
        capacity: int = 500_000,
        ttl_ns: int = 60_000_000_000,
        rotation_s: float | None = None,
        *,
        min_win_share: float = 1.0,
        exchange: str = "",
        actor: str = "arbiter",
    ) -> None:
        self.exchange = exchange
        self.metrics = metrics.Stats(actor)
        self.arbiter = Arbiter(capacity=capacity, ttl_ns=ttl_ns)
        self.keys = UpdateKeys()
        self.rotation_ns = int(rotation_s * 1e9) if rotation_s else 0
        self.min_win_share = min_win_share
        self.wins_at_rotation: dict[str, int] = {}
        self.last_rotation_ns: int | None = None
        self.stats = BatchArbiterStats()
        #: connection -> (its newest exchange time, epoch ns; when it last delivered a batch, monotonic ns)
        self.fronts: dict[str, tuple[int, int]] = {}
        #: the largest skew seen between the connections (ns of exchange time)
        self.max_skew_ns = 0

    def register(self, connection: str) -> None:
        """Make a connection known (it shows in the win table with 0 wins)."""
        self.arbiter.register(connection)

    def forget(self, connection: str) -> None:
        """Drop a replaced connection from the win table."""
        self.arbiter.forget(connection)
        self.keys.forget(connection)
        self.fronts.pop(connection, None)

    def filter(self, connection: str, batches: Batches, now_ns: int = 0) -> Batches:
        """The rows of `batches` that `connection` delivered first (a new Batches; tables may become None)."""
        self._track(connection, batches, now_ns)
        self.arbiter.expire(now_ns)
        out = replace(batches)
        if batches.trades is not None:
            keys = self.keys.trade_ids(batches.trades)
            out.trades = self._keep(connection, "trades", batches.trades, keys, now_ns)
        if batches.bbo is not None:
            out.bbo = self._keep(connection, "bbo", batches.bbo, self.keys.bbo(connection, batches.bbo), now_ns)
        if batches.l2 is not None and batches.l2_messages is not None:
            out.l2, out.l2_messages = self._keep_l2(connection, batches.l2, batches.l2_messages, now_ns)
        return out

    def _track(self, connection: str, batches: Batches, now_ns: int) -> None:
        """Move `connection`'s front to the newest exchange time in `batches`, and the arbiter's grace to the
        skew between the connections that delivered within the last TTL (silent ones are not behind)."""
        times = [_newest(t) for t in (batches.trades, batches.bbo, batches.l2_messages) if t is not None]
        front = self.fronts.get(connection)
        if front is not None:
            times.append(front[0])
        newest = max((ts for ts in times if ts is not None), default=None)
        if newest is not None:
            self.fronts[connection] = (newest, now_ns)
        ttl = self.arbiter.ttl_ns
        live = [ts for ts, at in self.fronts.values() if not ttl or now_ns - at <= ttl]
        skew = max(live) - min(live) if len(live) > 1 else 0
        self.arbiter.grace_ns = skew
        self.max_skew_ns = max(self.max_skew_ns, skew)
        self.metrics.gauge(metrics.ARBITER_SKEW, skew / 1e9, self.exchange)

    def seed(self, table: str, rows: pa.Table | pa.RecordBatch, now_ns: int = 0) -> int:
        """Remember the keys of rows passed on before a restart (`xtrader.recent`); the number of new keys.

        `rows`: key columns of `table` ("trades", "bbo"; "l2": its messages). Sequence-less quotes are
        counted as one connection's (their n restarts at each exchange time, see the module doc).
        """
        if not rows.num_rows:
            return 0
        keys: Sequence[Hashable]
        if table == "trades":
            keys = self.keys.trade_ids(rows)
        elif table == "bbo":
            keys = UpdateKeys().bbo("", rows)
        elif table == "l2":
            keys = self.keys.l2_ids(rows)
        else:
            return 0
        remember = self.arbiter.remember
        return sum(remember(key, now_ns, table) for key in keys)

    def _offer_all(self, connection: str, table: str, keys: Iterable[Hashable], now_ns: int) -> list[bool]:
        return self.arbiter.offer_many(connection, keys, now_ns, table)

    def _keep(
        self, connection: str, table: str, batch: pa.RecordBatch, keys: Iterable[Hashable], now_ns: int
    ) -> pa.RecordBatch | None:
        mask = self._offer_all(connection, table, keys, now_ns)
        kept = sum(mask)
        self._count(connection, table, kept, len(mask) - kept)
        if kept == len(mask):
            return batch
        if not kept:
            return None
        return batch.filter(pa.array(mask, pa.bool_()))

    def _keep_l2(
        self, connection: str, l2: pa.RecordBatch, messages: pa.RecordBatch, now_ns: int
    ) -> tuple[pa.RecordBatch | None, pa.RecordBatch | None]:
        m = messages
        mask = self._offer_all(connection, "l2", self.keys.l2_ids(messages), now_ns)
        if all(mask):
            self._count(connection, "l2", l2.num_rows, 0)
            return l2, messages
        per_message = np.asarray(m.column("bid_rows"), dtype=np.int64) + np.asarray(m.column("ask_rows"), np.int64)
        row_mask = np.repeat(np.asarray(mask, dtype=bool), per_message)
        kept_rows = int(row_mask.sum())
        self._count(connection, "l2", kept_rows, l2.num_rows - kept_rows, messages=len(mask) - sum(mask))
        if not any(mask):
            return None, None
        return l2.filter(pa.array(row_mask)), messages.filter(pa.array(mask, pa.bool_()))

    def _count(self, connection: str, table: str, kept: int, dropped: int, messages: int | None = None) -> None:
        stats = self.stats
        stats.kept_rows[table] += kept
        if dropped:
            stats.duplicate_rows[table] += dropped
        duplicates = dropped if messages is None else messages
        if duplicates:
            stats.duplicates_by_connection[connection] += duplicates
            self.metrics.count(metrics.DUPLICATES, duplicates, self.exchange, table)

    def rotation_due(self, now_ns: int) -> str | None:
        """The connection to replace when a rotation period has passed, else None."""
        if not self.rotation_ns:
            return None
        if self.last_rotation_ns is None:
            self.last_rotation_ns = now_ns
            return None
        if now_ns - self.last_rotation_ns < self.rotation_ns:
            return None
        self.last_rotation_ns = now_ns
        wins = self.arbiter.stats.wins
        period = {c: n - self.wins_at_rotation.get(c, 0) for c, n in wins.items()}  # wins in this period
        self.wins_at_rotation = dict(wins)
        total = sum(period.values())
        if len(period) < 2 or not total:
            return None
        loser = min(period, key=lambda c: (period[c], c))
        if period[loser] / total >= self.min_win_share:
            return None  # every connection pulls its weight
        self.stats.rotations += 1
        return loser

    def snapshot(self) -> dict[str, Any]:
        """Plain-data stats: unique keys, duplicates, wins and duplicates per connection, rows per table, keys held."""
        out = self.arbiter.stats.as_dict()
        out["duplicates_by_connection"] = dict(self.stats.duplicates_by_connection)
        out["kept_rows"] = dict(self.stats.kept_rows)
        out["duplicate_rows"] = dict(self.stats.duplicate_rows)
        out["rotations"] = self.stats.rotations
        # keys held per table (bounded by ttl_ns and capacity): what the arbiter's memory grows with
        out["remembered"] = {str(table): n for table, n in self.arbiter.remembered().items()}
        # how far the slowest connection is behind the fastest (exchange time): keys are kept that much longer
        out["skew_ms"] = self.arbiter.grace_ns // 1_000_000
        out["max_skew_ms"] = self.max_skew_ns // 1_000_000
        out["metrics"] = self.metrics.snapshot()
        return out


class UpdateKeys:
    """The arbiter key of every update of a batch: the same on each connection that carries the stream.

    One instance per arbiter: sequence-less quotes are counted per connection (see the module doc).
    """

    #: distinct quotes counted per (connection, symbol) at one exchange time before the count restarts
    MAX_QUOTES = 4096

    def __init__(self) -> None:
        # (connection, symbol) -> (exchange time, {quote: times changed to at that time}, the last quote)
        self._quotes: dict[tuple[str, str], tuple[int | None, dict[tuple[Any, ...], int], tuple[Any, ...]]] = {}

    def trades(self, trades: pa.RecordBatch | pa.Table) -> list[tuple[Any, ...]]:
        """("trades", symbol, trade_id) per row."""
        return _zip_keys("trades", *_columns(trades, TRADE_KEY))

    def l2(self, messages: pa.RecordBatch | pa.Table) -> list[tuple[Any, ...]]:
        """("l2", symbol, seq, prev_seq, first_seq, checksum) per message of an l2 message batch."""
        return _zip_keys("l2", *_columns(messages, L2_KEY))

    def trade_ids(self, trades: pa.RecordBatch | pa.Table) -> list[Hashable]:
        """The id of each row's `trades` key (`xtrader.update_ids`: one int); the key tuples without the C
        extension. Either way the keys of table "trades"."""
        ids = row_ids("trades", _columns(trades, TRADE_KEY))
        return self.trades(trades) if ids is None else ids  # type: ignore[return-value]

    def l2_ids(self, messages: pa.RecordBatch | pa.Table) -> list[Hashable]:
        """The id of each message's `l2` key, as `trade_ids`."""
        ids = row_ids("l2", _columns(messages, L2_KEY))
        return self.l2(messages) if ids is None else ids  # type: ignore[return-value]

    def bbo(self, connection: str, bbo: pa.RecordBatch | pa.Table) -> list[tuple[Any, ...]]:
        """("bbo", symbol, seq) per row with a sequence; else ("bbo", symbol, None, ts, bid, bsz, ask, asz, n)."""
        symbols = _pylist(bbo.column("symbol"))
        seqs = bbo.column("seq").to_pylist()
        if all(seq is not None for seq in seqs):
            return [("bbo", s, q) for s, q in zip(symbols, seqs, strict=True)]
        times = bbo.column("exchange_ts").cast(pa.int64()).to_pylist()
        sides = ("bid_price", "bid_size", "ask_price", "ask_size")
        tops = zip(*(bbo.column(n).to_pylist() for n in sides), strict=True)
        keys: list[tuple[Any, ...]] = []
        for symbol, seq, ts, top in zip(symbols, seqs, times, tops, strict=True):
            if seq is not None:
                keys.append(("bbo", symbol, seq))
                continue
            quote = (ts, *top)
            keys.append(("bbo", symbol, None, *quote, self._occurrence(connection, symbol, ts, quote)))
        return keys

    def _occurrence(self, connection: str, symbol: str, ts: int | None, quote: tuple[Any, ...]) -> int:
        """How many times `connection` has changed to this quote at this exchange time, this one included
        (a quote equal to the one before it is the same update sent again)."""
        slot = (connection, symbol)
        at, counts, last = self._quotes.get(slot, (None, {}, ()))
        if at != ts or (ts is None and len(counts) >= self.MAX_QUOTES):
            counts, last = {}, ()
        if quote == last:
            return counts[quote]
        n = counts[quote] = counts.get(quote, 0) + 1
        self._quotes[slot] = (ts, counts, quote)
        return n

    def forget(self, connection: str) -> None:
        """A replaced connection's quote counts."""
        for slot in [slot for slot in self._quotes if slot[0] == connection]:
            del self._quotes[slot]


def _newest(batch: pa.RecordBatch) -> int | None:
    """The newest exchange time of a batch, epoch ns (None: empty, or no exchange times)."""
    if not batch.num_rows:
        return None
    newest = pc.max(batch.column("exchange_ts"))
    return newest.value if newest.is_valid else None


#: the key columns of a trade and of an l2 message, in the key's order (tuples and ids alike)
TRADE_KEY = ("symbol", "trade_id")
L2_KEY = ("symbol", "seq", "prev_seq", "first_seq", "checksum")


def _columns(batch: pa.RecordBatch | pa.Table, names: tuple[str, ...]) -> list[pa.Array | pa.ChunkedArray]:
    return [batch.column(name) for name in names]


def _zip_keys(table: str, *columns: pa.Array | pa.ChunkedArray) -> list[tuple[Any, ...]]:
    """(table, *values) per row. The tuples are made by `zip` (a `(table, *values)` display per row cost twice as
    much: 186 against 88 ns a key over 1,000 l2 messages, /tmp microbenchmark)."""
    lists = [_pylist(c) for c in columns]
    return list(zip([table] * len(lists[0]), *lists, strict=True)) if lists else []


def _pylist(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The column's values as Python objects (strings for a dictionary column, None for nulls). A column
    without nulls goes through numpy: 3-4 x faster than `to_pylist` for dictionary strings, a little for ints."""
    if isinstance(column, pa.ChunkedArray):
        return [value for chunk in column.chunks for value in _pylist(chunk)]
    if column.null_count:
        if column.null_count == len(column):
            return [None] * len(column)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        return column.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_dictionary(column.type):
        values = np.array(column.dictionary.to_pylist(), dtype=object)
        return values[column.indices.to_numpy()].tolist()  # type: ignore[no-any-return]
    if pa.types.is_integer(column.type):
        return column.to_numpy().tolist()  # type: ignore[no-any-return]
    return column.to_pylist()  # type: ignore[no-any-return]
