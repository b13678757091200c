"""The final books against the simulator's (ground truth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xtrader.driver.simthread import SimulatorThread
from xtrader.plan import Plan


def _levels(book: Any) -> tuple[list[tuple[float, float]], list[tuple[float, float]]] | None:
    """(bids, asks) from a simulator book in its venue's REST shape."""
    if isinstance(book, dict):
        if "bids" in book and "asks" in book:

            def side(levels: Any) -> list[tuple[float, float]]:
                out = []
                for level in levels:
                    if isinstance(level, dict):
                        out.append((float(level["price"]), float(level["amount"])))
                    else:
                        values = [v for v in level if not isinstance(v, str) or v not in ("new", "change", "delete")]
                        out.append((float(values[0]), float(values[1])))
                return out

            return side(book["bids"]), side(book["asks"])
        for key in ("result", "data"):
            if key in book:
                return _levels(book[key])
    if isinstance(book, list) and book:
        return _levels(book[0])
    return None


def compare_books(
    sim: SimulatorThread,
    plan: Plan,
    tops: Mapping[str, Any],
    depth: int = 20,
    sim_stats: Mapping[str, Any] | None = None,
) -> tuple[int, int, list[str]]:
    """(checked, matched, mismatches): each final book's top `depth` against the simulator's.

    `tops`: per book actor id, its `tops(depth)` ({symbol: (bids, asks)}) or the exception reading it raised.
    A symbol the simulator sent no l2 message for is not checked (nothing could build its book).
    """
    venues = (sim_stats or {}).get("venues", {})

    checked = matched = 0
    mismatches: list[str] = []
    for spec in plan.books:
        book_tops = tops.get(spec.id)
        if not isinstance(book_tops, Mapping):
            mismatches.append(f"{spec.venue}: {book_tops!r}")
            continue
        for symbol in spec.symbols:
            if venues and not venues.get(spec.venue, {}).get("unique", {}).get("l2", {}).get(symbol):
                continue
            raw = sim.book(spec.venue, symbol, depth)
            if not _truth_was_sent(raw, venues.get(spec.venue, {}).get("seq", {}).get(symbol)):
                continue  # the last updates were published but never sent (lost to faults): unverifiable
            checked += 1
            truth = _levels(raw)
            ours = book_tops.get(symbol)
            if (
                truth is not None
                and ours is not None
                and (list(ours[0]), list(ours[1])) == (truth[0][:depth], truth[1][:depth])
            ):
                matched += 1
            else:
                mismatches.append(f"{spec.venue} {symbol}: {_difference(ours, truth)}")
    return checked, matched, mismatches


def _truth_seq(book: Any) -> int | None:
    """The sequence of the simulator's book in its venue's REST shape (None when it has none)."""
    if isinstance(book, dict):
        for key in ("lastUpdateId", "change_id", "seqId"):
            if key in book:
                return int(book[key])
        for key in ("result", "data"):
            if key in book:
                return _truth_seq(book[key])
    if isinstance(book, list) and book:
        return _truth_seq(book[0])
    return None


def _truth_was_sent(book: Any, sent: Mapping[str, int] | None) -> bool:
    """False when the simulator's book is past the last l2 message it actually wrote to any socket.

    The final update(s) of a symbol may be published and then lost to a fault (dropped, or
    queued on a connection that was killed) with nothing sent after them: no client can learn
    of them, so that book cannot be checked. Unknown sequences are checked.
    """
    seq = _truth_seq(book)
    if seq is None or not sent or sent.get("last") is None:
        return True
    return seq <= int(sent["last"])


def _difference(ours: Any, truth: Any) -> str:
    if ours is None:
        return "no valid book"
    if truth is None:
        return "no simulator book"
    for side, a, b in (("bids", ours[0], truth[0]), ("asks", ours[1], truth[1])):
        for level, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"{side}[{level}] {x} != simulator {y}"
        if len(a) != len(b[: len(a)]) or len(a) < min(len(b), 20):
            return f"{side}: {len(a)} levels, simulator {len(b)}"
    return "differs"
