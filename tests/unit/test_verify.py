"""Golden tests: `xtrader verify` over the four real captures.

The expected books come from an independent reference replay written in this
file straight from EXCHANGES.md with json + Decimal (no xtrader code), so a
misreading in the library cannot hide in the expectation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.captures import capture_path, records
from xtrader.verify import verify

Top = tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]


def _top(bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal], n: int = 10) -> Top:
    return sorted(bids.items(), reverse=True)[:n], sorted(asks.items())[:n]


def _set(side: dict[Decimal, Decimal], px: object, qty: object) -> None:
    p, q = Decimal(str(px)), Decimal(str(qty))
    if q == 0:
        side.pop(p, None)
    else:
        side[p] = q


def reference_binance(venue: str) -> tuple[dict[str, Top], dict[str, int]]:
    """Binance's documented procedure: buffer, snapshot, drop stale, bridge, then apply."""
    futures = venue == "binance_futures"
    buffered: dict[str, list[dict[str, object]]] = {}
    books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    last: dict[str, int] = {}
    applied = {"applied": 0, "dropped": 0}

    def feed(sym: str, d: dict[str, object]) -> None:
        u, first = int(d["u"]), int(d["U"])  # type: ignore[call-overload]
        if futures:
            if u < last[sym]:
                applied["dropped"] += 1
                return
        elif u <= last[sym]:
            applied["dropped"] += 1
            return
        bids, asks = books[sym]
        for px, q in d["b"]:  # type: ignore[attr-defined]
            _set(bids, px, q)
        for px, q in d["a"]:  # type: ignore[attr-defined]
            _set(asks, px, q)
        last[sym] = u
        applied["applied"] += 1
        assert first <= u

    for r in records(venue):
        if r.dir != "recv" or r.msg is None:
            continue
        if r.kind == "http" and urlsplit(r.url).path.endswith("/depth"):
            sym = parse_qs(urlsplit(r.url).query)["symbol"][0]
            snap = json.loads(r.msg)
            bids, asks = {}, {}
            for px, q in snap["bids"]:
                _set(bids, px, q)
            for px, q in snap["asks"]:
                _set(asks, px, q)
            books[sym] = (bids, asks)
            last[sym] = snap["lastUpdateId"]
            for d in buffered.pop(sym, []):
                feed(sym, d)
        elif r.kind == "ws":
            d = json.loads(r.msg)["data"]
            if d.get("e") != "depthUpdate":
                continue
            if d["s"] in books:
                feed(d["s"], d)
            else:
                buffered.setdefault(d["s"], []).append(d)
    return {s: _top(*b) for s, b in books.items()}, applied


def reference_okx() -> dict[str, Top]:
    books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    for r in records("okx"):
        if r.kind != "ws" or r.dir != "recv" or not r.msg or r.msg == "pong":
            continue
        m = json.loads(r.msg)
        if m.get("arg", {}).get("channel") != "books" or "data" not in m:
            continue
        inst = m["arg"]["instId"]
        if m["action"] == "snapshot":
            books[inst] = ({}, {})
        for d in m["data"]:
            for px, q, *_ in d["bids"]:
                _set(books[inst][0], px, q)
            for px, q, *_ in d["asks"]:
                _set(books[inst][1], px, q)
    return {s: _top(*b) for s, b in books.items()}


def reference_deribit() -> dict[str, Top]:
    books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    for r in records("deribit"):
        if r.kind != "ws" or r.dir != "recv" or not r.msg:
            continue
        m = json.loads(r.msg, parse_float=Decimal)
        channel = m.get("params", {}).get("channel", "")
        if not channel.startswith("book."):
            continue
        d = m["params"]["data"]
        inst = d["instrument_name"]
        if d["type"] == "snapshot":
            books[inst] = ({}, {})
        for action, px, q in d["bids"]:
            _set(books[inst][0], px, 0 if action == "delete" else q)
        for action, px, q in d["asks"]:
            _set(books[inst][1], px, 0 if action == "delete" else q)
    return {s: _top(*b) for s, b in books.items()}


def _as_float(top: Top) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    bids, asks = top
    return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]


def _final_tops(venue: str) -> dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]]:
    result = verify(capture_path(venue))
    assert result.books is not None
    tops = {}
    for (_conn, symbol), sync in result.books.books.items():
        assert sync.valid, f"{venue} {symbol} has no valid book at the end"
        tops[symbol] = sync.book.top(10)
    return tops


@pytest.mark.parametrize("venue", ["binance", "binance_futures", "okx", "deribit"])
def test_verify_is_clean(venue: str) -> None:
    summary = verify(capture_path(venue)).summary()
    ws_frames = sum(1 for r in records(venue) if r.kind == "ws" and r.dir == "recv")
    assert summary["venue"] == venue
    assert summary["messages"] == ws_frames
    assert summary["rejects"] == 0
    books = summary["books"]
    assert books["gaps"] == books["resyncs"] == books["checksum_failed"] == 0
    assert books["bbo_mismatches"] == books["crossed"] == 0
    assert books["bbo_size_diffs"] == 0
    assert summary["arbiter"]["connections"] == 1
    assert summary["arbiter"]["duplicates"] == 0


@pytest.mark.parametrize(
    ("venue", "applied", "cross_checks", "symbols"),
    [
        ("binance", 172, 26, {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}),
        ("binance_futures", 752, 50, {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}),
    ],
)
def test_binance_snapshot_bridged_for_every_symbol(
    venue: str, applied: int, cross_checks: int, symbols: set[str]
) -> None:
    result = verify(capture_path(venue))
    summary = result.summary()
    expected_tops, counts = reference_binance(venue)
    assert counts["applied"] == applied  # the reference agrees with the captures' README
    assert summary["books"]["updates_applied"] == applied
    assert summary["books"]["bbo_cross_checks"] == cross_checks
    assert summary["books"]["bbo_mismatches"] == 0
    assert result.books is not None
    synced = {sym for (_c, sym), sync in result.books.books.items() if sync.valid and sync.counters.snapshots == 1}
    assert synced == symbols
    tops = _final_tops(venue)
    assert set(tops) == symbols
    for sym in symbols:
        assert tops[sym] == _as_float(expected_tops[sym]), sym


def test_okx_every_checksum_verified() -> None:
    summary = verify(capture_path("okx")).summary()
    assert summary["books"]["checksum_ok"] == 290  # 3 snapshots + 287 updates, all with a checksum
    assert summary["books"]["checksum_skipped"] == 0
    assert summary["books"]["updates_applied"] == 287
    expected = reference_okx()
    tops = _final_tops("okx")
    assert set(tops) == {"BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"}
    for sym, top in tops.items():
        assert top == _as_float(expected[sym]), sym


def test_deribit_every_chain_link_accepted() -> None:
    result = verify(capture_path("deribit"))
    summary = result.summary()
    assert summary["books"]["updates_applied"] == 36
    assert summary["books"]["gaps"] == 0
    assert result.books is not None
    assert sum(s.counters.snapshots for s in result.books.books.values()) == 10
    expected = reference_deribit()
    tops = _final_tops("deribit")
    assert len(tops) == 10
    for sym, top in tops.items():
        assert top == _as_float(expected[sym]), sym


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xtrader.cli", "verify", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_json_is_one_object_and_exit_zero() -> None:
    proc = _cli(str(capture_path("binance")), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert list(summary) == ["venue", "files", "messages", "rejects", "rows", "books", "arbiter"]
    assert list(summary["books"]) == [
        "updates_applied",
        "gaps",
        "resyncs",
        "checksum_ok",
        "checksum_failed",
        "checksum_skipped",
        "bbo_cross_checks",
        "bbo_mismatches",
        "bbo_size_diffs",
        "crossed",
    ]
    assert list(summary["arbiter"]) == ["connections", "unique", "duplicates", "wins"]
    assert summary["rows"]["trades"] == 2


def test_cli_gap_exits_one(tmp_path: Path) -> None:
    lines = capture_path("deribit").read_text(encoding="utf-8").splitlines(keepends=True)
    # drop one change message of the busiest instrument: its successor's prev_change_id no longer links
    changes = [i for i, line in enumerate(lines) if "BTC-24SEP21-8000-P" in line and '\\"type\\":\\"change\\"' in line]
    del lines[changes[3]]
    broken = tmp_path / "gap.jsonl"
    broken.write_text("".join(lines), encoding="utf-8")
    proc = _cli(str(broken), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["books"]["gaps"] == 1


def test_cli_bad_input_exits_two_naming_file_and_line(tmp_path: Path) -> None:
    lines = capture_path("okx").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[6] = "{not json\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines[:20]), encoding="utf-8")
    proc = _cli(str(bad), "--json")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert f"{bad}:7" in proc.stderr
    assert _cli(str(tmp_path / "missing.jsonl")).returncode == 2


def test_coin_m_style_capture_works_with_venue_override(tmp_path: Path) -> None:
    # COIN-M uses the USD-M rules; its hosts (dstream/dapi) are passed explicitly
    text = capture_path("binance_futures").read_text(encoding="utf-8")
    coin_m = tmp_path / "coinm.jsonl"
    coin_m.write_text(
        text.replace("fstream.binance.com", "dstream.binance.com").replace(
            "fapi.binance.com/fapi", "dapi.binance.com/dapi"
        ),
        encoding="utf-8",
    )
    proc = _cli(str(coin_m), "--venue", "binance_futures", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["books"]["updates_applied"] == 752


# -- the bbo cross-check: a price difference is a book error, a size-only one is the exchange's ---------------------

_WS = "wss://fstream.binance.com/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker"


def _ws(ts: float, stream: str, data: dict[str, object]) -> dict[str, object]:
    return {
        "ts": ts,
        "conn": "ws.1",
        "kind": "ws",
        "dir": "recv",
        "url": _WS,
        "msg": json.dumps({"stream": stream, "data": data}),
    }


def _ticker(ts: float, u: int, bid: tuple[str, str], ask: tuple[str, str]) -> dict[str, object]:
    data = {
        "e": "bookTicker",
        "u": u,
        "s": "BTCUSDT",
        "b": bid[0],
        "B": bid[1],
        "a": ask[0],
        "A": ask[1],
        "T": 1,
        "E": 1,
    }
    return _ws(ts, "btcusdt@bookTicker", data)


def _bbo_pair(tmp_path: Path, bid: tuple[str, str], ask: tuple[str, str]) -> Path:
    """A USD-M capture whose one depth event (u=105) leaves the book at bid 100.0 x 4, ask 101.0 x 3, and whose
    bookTicker at the same u says `bid`, `ask`: the synthetic pair of frames the cross-check compares."""
    snapshot = {"lastUpdateId": 100, "E": 1, "T": 1, "bids": [["100.0", "2"], ["99.0", "1"]], "asks": [["101.0", "3"]]}
    depth = {"e": "depthUpdate", "E": 2, "T": 2, "s": "BTCUSDT", "U": 99, "u": 105, "pu": 98}
    records = [
        _ticker(1.0, 50, ("99.0", "1"), ("101.0", "1")),  # before any book: not cross-checked
        {
            "ts": 1.1,
            "conn": "http.0",
            "kind": "http",
            "dir": "recv",
            "url": "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000",
            "msg": json.dumps(snapshot),
        },
        _ws(1.2, "btcusdt@depth@100ms", {**depth, "b": [["100.0", "4"]], "a": []}),
        _ticker(1.3, 105, bid, ask),
    ]
    path = tmp_path / "bbo.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("bid", "ask", "status", "mismatches", "size_diffs"),
    [
        (("100.0", "4"), ("101.0", "3"), 0, 0, 0),  # the same top
        (("100.5", "4"), ("101.0", "3"), 1, 1, 0),  # best bid price differs: a book error
        (("100.0", "4"), ("100.9", "3"), 1, 1, 0),  # best ask price differs
        (("100.0", "5"), ("101.0", "3"), 0, 0, 1),  # size only (prices equal): the exchange's own disagreement
        (("100.0", "4"), ("101.0", "2"), 0, 0, 1),
    ],
)
def test_a_bbo_mismatch_is_a_price_difference_and_size_only_differences_are_counted_apart(
    tmp_path: Path, bid: tuple[str, str], ask: tuple[str, str], status: int, mismatches: int, size_diffs: int
) -> None:
    proc = _cli(str(_bbo_pair(tmp_path, bid, ask)), "--json")
    assert proc.returncode == status, proc.stderr
    books = json.loads(proc.stdout)["books"]
    assert books["bbo_cross_checks"] == 1
    assert books["bbo_mismatches"] == mismatches
    assert books["bbo_size_diffs"] == size_diffs
