"""Ground truth: what the market generated and what really went on the wire.

Counts are rows in the sense of xtrader's tables: one ``trades`` row per trade message, one
``l2`` row per price level of a diff, one ``bbo`` row per top-of-book message. ``sent`` counts
every copy written to a socket (duplicates and redundant connections included); ``unique``
counts each generated message once however many connections carried it, which is what a
capture that deduplicates redundant connections should end up with.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


class Frame:
    """One encoded market message, shared by every connection it goes to.

    Attributes:
        data: the payload bytes as the venue sends them (before any stream wrapper).
        kind: the stream kind (``depth``, ``trade``...), for per-kind counts.
        table: ``trades``, ``l2``, ``bbo``, ``l2_partial`` or None for non-row messages.
        rows: rows this message yields in `table`.
        first_seq, last_seq: the sequence range it covers (book messages), else None.
        sent: set when a first copy is written anywhere (unique counting, O(1) memory).
    """

    __slots__ = ("data", "first_seq", "kind", "last_seq", "rows", "sent", "symbol", "table")

    def __init__(
        self,
        data: bytes,
        kind: str,
        table: str | None,
        symbol: str,
        *,
        rows: int,
        first_seq: int | None = None,
        last_seq: int | None = None,
    ) -> None:
        self.data = data
        self.kind = kind
        self.table = table
        self.symbol = symbol
        self.rows = rows
        self.first_seq = first_seq
        self.last_seq = last_seq
        self.sent = False


#: the closed connections whose records a venue keeps, the newest (open ones are always kept): a simulator that
#: serves for days sees thousands of reconnects, and each record holds per-symbol counts
KEEP_CLOSED = 256


def _table() -> defaultdict[str, defaultdict[str, int]]:
    return defaultdict(lambda: defaultdict(int))


@dataclass
class ConnectionStats:
    """What one connection was sent, after faults."""

    conn_id: int
    path: str
    faults: str
    opened_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    close_reason: str | None = None
    messages: int = 0  # data frames written, malformed and unknown ones included
    bytes: int = 0
    control: int = 0  # acks, errors, notices
    rows: defaultdict[str, defaultdict[str, int]] = field(default_factory=_table)
    seq: dict[str, list[int]] = field(default_factory=dict)  # symbol -> [first, last]
    faults_applied: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. replay progress

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.conn_id,
            "path": self.path,
            "faults": self.faults,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "close_reason": self.close_reason,
            "messages": self.messages,
            "bytes": self.bytes,
            "control": self.control,
            "rows": {t: dict(s) for t, s in self.rows.items()},
            "seq": {s: {"first": r[0], "last": r[1]} for s, r in self.seq.items()},
            "faults_applied": dict(self.faults_applied),
            "notes": self.notes,
        }


class VenueTruth:
    """Counters for one venue."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.generated = _table()  # kind -> symbol -> rows (whether subscribed or not)
        self.sent = _table()  # table -> symbol -> rows, every copy
        self.unique = _table()  # table -> symbol -> rows, once per generated message
        self.unique_kinds = _table()  # kind -> symbol -> messages, once each
        self.unique_seq: dict[str, list[int]] = {}  # symbol -> [first, last] of l2 diffs
        self.messages = 0
        self.bytes = 0
        self.connections: list[ConnectionStats] = []  # every open one, and the newest KEEP_CLOSED closed ones
        self.connections_total = 0  # every connection ever opened
        self.connections_forgotten = 0  # closed ones whose records were let go (their rows stay counted above)
        self._prune_at = 2 * KEEP_CLOSED
        self.rest: defaultdict[str, int] = defaultdict(int)
        self.faults_ignored: set[str] = set()

    def add_connection(self, conn: ConnectionStats) -> None:
        """Record a new connection; the oldest closed records beyond KEEP_CLOSED are let go (counted)."""
        self.connections.append(conn)
        self.connections_total += 1
        if len(self.connections) >= self._prune_at:  # a scan every KEEP_CLOSED connections at most
            closed = [c for c in self.connections if c.closed_at is not None]
            forget = {id(c) for c in closed[: max(0, len(closed) - KEEP_CLOSED)]}
            if forget:
                self.connections = [c for c in self.connections if id(c) not in forget]
                self.connections_forgotten += len(forget)
            self._prune_at = len(self.connections) + KEEP_CLOSED

    def count_sent(self, frame: Frame, size: int, conn: ConnectionStats) -> None:
        """Record one copy of `frame` written to `conn`'s socket."""
        self.messages += 1
        self.bytes += size
        conn.messages += 1
        conn.bytes += size
        table = frame.table
        if table is None:
            return
        symbol = frame.symbol
        self.sent[table][symbol] += frame.rows
        conn.rows[table][symbol] += frame.rows
        if frame.last_seq is not None and table == "l2":
            _extend(conn.seq, symbol, frame)
        if not frame.sent:
            frame.sent = True
            self.unique[table][symbol] += frame.rows
            self.unique_kinds[frame.kind][symbol] += 1
            if frame.last_seq is not None and table == "l2":
                _extend(self.unique_seq, symbol, frame)

    def to_json(self) -> dict[str, Any]:
        def plain(t: defaultdict[str, defaultdict[str, int]]) -> dict[str, dict[str, int]]:
            return {k: dict(v) for k, v in t.items()}

        return {
            "generated": plain(self.generated),
            "sent": plain(self.sent),
            "unique": plain(self.unique),
            "unique_kinds": plain(self.unique_kinds),
            "seq": {s: {"first": r[0], "last": r[1]} for s, r in self.unique_seq.items()},
            "messages": self.messages,
            "bytes": self.bytes,
            "rest": dict(self.rest),
            "faults_ignored": sorted(self.faults_ignored),
            "connections": [c.to_json() for c in self.connections],
            "connections_total": self.connections_total,
            "connections_forgotten": self.connections_forgotten,
        }


def _extend(ranges: dict[str, list[int]], symbol: str, frame: Frame) -> None:
    assert frame.first_seq is not None and frame.last_seq is not None
    r = ranges.get(symbol)
    if r is None:
        ranges[symbol] = [frame.first_seq, frame.last_seq]
    else:
        r[0] = min(r[0], frame.first_seq)
        r[1] = max(r[1], frame.last_seq)
