"""`xtrader verify`: replay a capture file through the venue parser, book sync and arbiter.

The capture format is the one of ../shared/data/exchange-captures (one JSON
record per line: ts, conn, kind, dir, url, msg). Books are kept per
(connection, symbol); REST snapshot records feed the books of that symbol
where the venue needs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from xtrader.arbiter import Arbiter
from xtrader.arbiter_batches import UpdateKeys
from xtrader.batch import Batches, Columns
from xtrader.clock import Receipt
from xtrader.errors import ParseError, XtraderError
from xtrader.sync import Books, BookSync, Verdict
from xtrader.venues import Venue, venue

#: URL host fragments -> venue name, most specific first
_HOSTS = (
    ("fstream.binance", "binance_futures"),
    ("fapi.binance", "binance_futures"),
    ("dstream.binance", "binance_futures"),
    ("dapi.binance", "binance_futures"),
    ("binance", "binance"),
    ("okx.com", "okx"),
    ("deribit.com", "deribit"),
)


class VerifyInputError(XtraderError):
    """The capture file is unreadable or not in the capture format (exit status 2)."""

    terminal = True


def detect_venue(url: str) -> str | None:
    """The venue a websocket or REST URL belongs to, or None."""
    host = urlsplit(url).netloc.lower()
    for fragment, name in _HOSTS:
        if fragment in host:
            return name
    return None


@dataclass
class VerifyResult:
    """Everything a replay found; `summary()` is the stable `--json` object."""

    venue: str
    messages: int = 0
    rejects: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {"trades": 0, "l2": 0, "bbo": 0})
    books: Books | None = None
    bbo_cross_checks: int = 0
    bbo_mismatches: int = 0
    bbo_size_diffs: int = 0
    arbiter: Arbiter = field(default_factory=Arbiter)
    #: every flushed batch, per connection, in order (for tests and tools)
    batches: list[tuple[str, Batches]] = field(default_factory=list)
    stale_snapshots: int = 0

    def summary(self) -> dict[str, Any]:
        counters = self.books.counters() if self.books else None
        get = (lambda name: getattr(counters, name)) if counters else (lambda name: 0)
        return {
            "venue": self.venue,
            "files": 1,
            "messages": self.messages,
            "rejects": self.rejects,
            "rows": dict(self.rows),
            "books": {
                "updates_applied": get("updates_applied"),
                "gaps": get("gaps"),
                "resyncs": get("resyncs"),
                "checksum_ok": get("checksum_ok"),
                "checksum_failed": get("checksum_failed"),
                "checksum_skipped": get("checksum_skipped"),
                "bbo_cross_checks": self.bbo_cross_checks,
                "bbo_mismatches": self.bbo_mismatches,
                "bbo_size_diffs": self.bbo_size_diffs,
                "crossed": get("crossed"),
            },
            "arbiter": self.arbiter.stats.as_dict(),
        }

    def clean(self) -> bool:
        """True when nothing was wrong: no gap, checksum failure, bbo mismatch or crossed book."""
        books = self.summary()["books"]
        return not (books["gaps"] or books["checksum_failed"] or books["bbo_mismatches"] or books["crossed"])


class _Replay:
    """The state of one replay."""

    def __init__(self, v: Venue, result: VerifyResult) -> None:
        self.venue = v
        self.result = result
        checksum = getattr(v, "book_checksum", None)
        result.books = self.books = Books(v.sync_kind, keep_text=v.keep_text, checksum=checksum)
        self.columns: dict[str, Columns] = {}
        # (conn, symbol) -> {depth event final seq: (best bid, best ask)} after it was applied
        self.tops: dict[tuple[str, str], dict[int, tuple[Any, Any]]] = {}
        self.tickers: list[tuple[str, str, int, tuple[Any, Any]]] = []
        self.ws_connections: set[str] = set()
        self.keys = UpdateKeys()  # the pipeline arbiter's own keys
        self.mono = 0

    def receipt(self, ts: float) -> Receipt:
        self.mono += 1
        return Receipt(int(ts * 1e9), self.mono)

    def ws_frame(self, conn: str, ts: float, msg: str) -> None:
        self.result.messages += 1
        self.ws_connections.add(conn)
        self.result.arbiter.register(conn)
        out = self.columns.get(conn)
        if out is None:
            out = self.columns[conn] = self.venue.columns()
        try:
            self.venue.parse(msg.encode(), self.receipt(ts), out)
        except ParseError:
            self.result.rejects += 1
            return
        self.flushed(conn, out.flush(int(ts * 1e9)))

    def rest_snapshot(self, url: str, ts: float, body: str) -> None:
        symbol = (parse_qs(urlsplit(url).query).get("symbol") or [""])[0]
        out = self.venue.columns()
        try:
            self.venue.parse_snapshot(body.encode(), symbol, self.receipt(ts), out)
        except ParseError:
            self.result.rejects += 1
            return
        batches = out.flush(int(ts * 1e9))
        self.result.rejects += batches.rejects
        if batches.l2 is None or batches.l2_messages is None:
            return
        self.result.rows["l2"] += batches.l2.num_rows
        conns = sorted(self.ws_connections) or ["-"]
        for conn in conns:
            outcome = self.books.apply_batch(conn, batches.l2, batches.l2_messages, rest=True)
            for sym, _msg, verdict, sync in outcome:
                if verdict is Verdict.STALE:
                    self.result.stale_snapshots += 1
                elif sync.valid:
                    self._note_top(conn, sym, sync)

    def flushed(self, conn: str, batches: Batches) -> None:
        result = self.result
        result.rejects += batches.rejects
        result.batches.append((conn, batches))
        arbiter = result.arbiter
        if batches.trades is not None:
            result.rows["trades"] += batches.trades.num_rows
            arbiter.offer_many(conn, self.keys.trade_ids(batches.trades), 0, "trades")
        if batches.bbo is not None:
            result.rows["bbo"] += batches.bbo.num_rows
            for key in self.keys.bbo(conn, batches.bbo):
                arbiter.offer(conn, key)
            self._bbo(conn, batches.bbo)
        if batches.l2 is not None and batches.l2_messages is not None:
            result.rows["l2"] += batches.l2.num_rows
            arbiter.offer_many(conn, self.keys.l2_ids(batches.l2_messages), 0, "l2")
            for sym, msg, verdict, sync in self.books.apply_batch(conn, batches.l2, batches.l2_messages):
                if verdict is Verdict.APPLY and sync.valid:
                    self._note_top(conn, sym, sync, msg.seq)

    def _note_top(self, conn: str, symbol: str, sync: BookSync, seq: int | None = None) -> None:
        if seq is None:
            seq = sync.last
        if seq is not None:
            self.tops.setdefault((conn, symbol), {})[seq] = (sync.book.best_bid(), sync.book.best_ask())

    def _bbo(self, conn: str, bbo: pa.RecordBatch) -> None:
        b = bbo.to_pydict()
        for i, sym in enumerate(b["symbol"]):
            seq = b["seq"][i]
            if seq is not None:
                top = ((b["bid_price"][i], b["bid_size"][i]), (b["ask_price"][i], b["ask_size"][i]))
                self.tickers.append((conn, sym, seq, top))

    def cross_check(self) -> None:
        """Binance: each bookTicker whose u equals a depth event's final u must have the book's top prices.

        A different best bid or ask price is a book error (`bbo_mismatches`). Equal prices with a
        different size are the exchange's own streams disagreeing (seen on real COIN-M captures, where
        an independent replay agrees with the book): counted in `bbo_size_diffs`, not an error.
        """
        for conn, sym, seq, (bid, ask) in self.tickers:
            top = self.tops.get((conn, sym), {}).get(seq)
            if top is None:
                continue
            self.result.bbo_cross_checks += 1
            if _price(top[0]) != _price(bid) or _price(top[1]) != _price(ask):
                self.result.bbo_mismatches += 1
            elif top != (bid, ask):
                self.result.bbo_size_diffs += 1


def _price(level: Any) -> Any:
    """The price of a (price, size) level; None for a missing side."""
    return None if level is None else level[0]


def _records(path: Path) -> Any:
    """(line number, record) of a capture file; VerifyInputError names the file and line."""
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise VerifyInputError(f"{path}: cannot open: {exc.strerror}") from None
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                for key, kind in (("ts", (int, float)), ("conn", str), ("kind", str), ("dir", str), ("url", str)):
                    if not isinstance(record.get(key), kind):
                        raise ValueError(f"field {key!r} missing or of the wrong type")
                if record.get("msg") is not None and not isinstance(record["msg"], str):
                    raise ValueError("field 'msg' is not a string")
            except (ValueError, UnicodeDecodeError) as exc:
                raise VerifyInputError(f"{path}:{number}: not a capture record: {exc}") from None
            yield number, record


def verify(path: str | Path, venue_name: str | None = None) -> VerifyResult:
    """Replay one capture file.

    Args:
        path: a capture .jsonl file.
        venue_name: the venue; detected from the URLs when None.

    Raises:
        VerifyInputError: unreadable file, bad record, or unknown venue.
    """
    path = Path(path)
    name = venue_name
    if name is None:
        for _number, record in _records(path):
            name = detect_venue(record["url"])
            if name is not None:
                break
        else:
            raise VerifyInputError(f"{path}: cannot tell the venue from the URLs; pass --venue")
    try:
        v = venue(name)
    except KeyError as exc:
        raise VerifyInputError(str(exc.args[0])) from None
    result = VerifyResult(venue=name)
    replay = _Replay(v, result)
    for _number, record in _records(path):
        if record["dir"] != "recv" or record.get("msg") is None:
            continue
        if record["kind"] == "ws":
            replay.ws_frame(record["conn"], record["ts"], record["msg"])
        elif record["kind"] == "http" and v.needs_snapshot and _is_depth_url(record["url"]):
            replay.rest_snapshot(record["url"], record["ts"], record["msg"])
    replay.cross_check()
    return result


def _is_depth_url(url: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith("/depth")
