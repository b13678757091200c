"""Table-driven book-sync tests: each case is a message sequence and the verdicts it must get."""

from __future__ import annotations

import zlib

import pytest

from xtrader.sync import EMPTY, BookSync, Levels, Message, Verdict

A, D, B, G, S = Verdict.APPLY, Verdict.DROP, Verdict.BUFFER, Verdict.GAP, Verdict.STALE


def diff(first: int, last: int, prev: int | None = None) -> Message:
    return Message(seq=last, prev_seq=prev, first_seq=first, is_snapshot=False)


def snap(seq: int) -> Message:
    return Message(seq=seq, prev_seq=None, first_seq=None, is_snapshot=True)


def upd(prev: int, seq: int, checksum: int | None = None) -> Message:
    return Message(seq=seq, prev_seq=prev, first_seq=None, is_snapshot=False, checksum=checksum)


def run(kind: str, steps: list[tuple[str, Message]]) -> tuple[list[Verdict], BookSync]:
    sync = BookSync(kind)
    verdicts = []
    for how, msg in steps:
        verdicts.append(sync.on_rest_snapshot(msg, EMPTY) if how == "rest" else sync.on_message(msg))
    return verdicts, sync


BINANCE_SPOT = {
    # buffered diffs bridged by the snapshot (lastUpdateId inside [U, u] of the first kept event)
    "in_order": (
        [("ws", diff(100, 105)), ("ws", diff(106, 110)), ("rest", snap(107)), ("ws", diff(111, 115))],
        [B, B, A, A],
        115,
    ),
    "stale_events_dropped": ([("ws", diff(100, 105)), ("rest", snap(105)), ("ws", diff(106, 108))], [B, A, A], 108),
    "duplicate": ([("ws", diff(100, 105)), ("rest", snap(100)), ("ws", diff(101, 105))], [B, A, D], 105),
    "stale_snapshot": ([("ws", diff(100, 105)), ("rest", snap(98)), ("rest", snap(103))], [B, S, A], 105),
    "gap": ([("ws", diff(100, 105)), ("rest", snap(101)), ("ws", diff(107, 109))], [B, A, G], None),
    "gap_in_bridge": ([("ws", diff(110, 115)), ("rest", snap(112)), ("ws", diff(120, 121))], [B, A, G], None),
    "out_of_order": (
        [("ws", diff(1, 5)), ("rest", snap(4)), ("ws", diff(10, 12)), ("ws", diff(6, 9))],
        [B, A, G, B],
        None,
    ),
    "resync_after_gap": (
        [("ws", diff(1, 5)), ("rest", snap(4)), ("ws", diff(10, 12)), ("ws", diff(13, 14)), ("rest", snap(11))],
        [B, A, G, B, A],
        14,
    ),
    # 5. at each edge of "U > book_id + 1": U == lastUpdateId + 1 follows on, U == lastUpdateId + 2 is a gap
    "first_at_last_plus_one": ([("rest", snap(100)), ("ws", diff(101, 105))], [A, A], 105),
    "first_at_last_plus_two": ([("rest", snap(100)), ("ws", diff(102, 105))], [A, G], None),
    "later_at_last_plus_two": (
        [("rest", snap(100)), ("ws", diff(101, 105)), ("ws", diff(107, 109))],
        [A, A, G],
        None,
    ),
}

BINANCE_FUTURES = {
    "in_order": (
        [("ws", diff(100, 105, 99)), ("ws", diff(106, 110, 105)), ("rest", snap(107)), ("ws", diff(111, 120, 110))],
        [B, B, A, A],
        120,
    ),
    # 3. drop u < lastUpdateId; 4. the first processed event has U <= lastUpdateId <= u
    "bridge_equal": ([("ws", diff(90, 100, 89)), ("ws", diff(101, 104, 100)), ("rest", snap(100))], [B, B, A], 104),
    "duplicate": ([("rest", snap(50)), ("ws", diff(45, 55, 44)), ("ws", diff(45, 55, 44))], [A, A, D], 55),
    "stale_snapshot": ([("ws", diff(100, 105, 99)), ("rest", snap(90)), ("rest", snap(103))], [B, S, A], 105),
    "gap": ([("rest", snap(50)), ("ws", diff(45, 55, 44)), ("ws", diff(60, 70, 58))], [A, A, G], None),
    "bridge_gap": ([("rest", snap(50)), ("ws", diff(60, 70, 59))], [A, G], None),
    # 4. the bracket U <= lastUpdateId <= u at each edge, buffered before or arriving after the snapshot
    "bracket_first_equal_buffered": ([("ws", diff(100, 104, 99)), ("rest", snap(100))], [B, A], 104),
    "bracket_last_equal_buffered": ([("ws", diff(95, 100, 94)), ("rest", snap(100))], [B, A], 100),
    "bracket_first_equal_live": ([("rest", snap(100)), ("ws", diff(100, 104, 99))], [A, A], 104),
    "bracket_last_equal_live": ([("rest", snap(100)), ("ws", diff(95, 100, 94))], [A, A], 100),
    # the snapshot is the state right after an event (lastUpdateId == the next event's pu): that next event
    # follows on by step 5's chain (pu == previous u) although U > lastUpdateId; no resync is needed
    "bridge_on_pu_live": ([("rest", snap(100)), ("ws", diff(101, 104, 100))], [A, A], 104),
    "bridge_on_pu_buffered": (
        [("ws", diff(101, 104, 100)), ("ws", diff(105, 106, 104)), ("rest", snap(100))],
        [B, B, A],
        106,
    ),
    "bridge_on_pu_then_gap": (
        [("rest", snap(100)), ("ws", diff(101, 104, 100)), ("ws", diff(108, 110, 107))],
        [A, A, G],
        None,
    ),
    # neither bracketed nor chained: an event between lastUpdateId and this one was missed
    "bracket_first_one_after": ([("rest", snap(100)), ("ws", diff(102, 104, 101))], [A, G], None),
    # U == lastUpdateId + 1 is outside the bracket too, unless pu chains on the snapshot (bridge_on_pu)
    "bracket_first_next_unchained_live": ([("rest", snap(100)), ("ws", diff(101, 104, 99))], [A, G], None),
    "bracket_first_next_unchained_buffered": (
        [("ws", diff(101, 104, 99)), ("ws", diff(105, 106, 104)), ("rest", snap(100))],
        [B, B, S],
        None,
    ),
    # buffered events all after the snapshot: it cannot be bridged, fetch a newer one
    "bracket_first_one_after_buffered": (
        [("ws", diff(102, 104, 101)), ("ws", diff(105, 106, 104)), ("rest", snap(100))],
        [B, B, S],
        None,
    ),
    "bracket_last_one_before": (
        [("rest", snap(100)), ("ws", diff(95, 99, 94)), ("ws", diff(100, 104, 99))],
        [A, D, A],
        104,
    ),
    # futures ids are not contiguous: only pu == previous u counts
    "non_contiguous_ids": ([("rest", snap(50)), ("ws", diff(45, 55, 44)), ("ws", diff(80, 90, 55))], [A, A, A], 90),
    "out_of_order": (
        [("rest", snap(50)), ("ws", diff(45, 55, 44)), ("ws", diff(70, 80, 60)), ("ws", diff(56, 60, 55))],
        [A, A, G, B],
        None,
    ),
}

OKX = {
    "in_order": ([("ws", snap(10)), ("ws", upd(10, 15)), ("ws", upd(15, 22))], [A, A, A], 22),
    "no_change_heartbeat": ([("ws", snap(10)), ("ws", upd(10, 15)), ("ws", upd(15, 15))], [A, A, A], 15),
    # documented example: snapshot (-1, 10) -> (10, 15) -> (15, 15) -> reset (15, 3) -> (3, 5)
    "sequence_reset": (
        [("ws", snap(10)), ("ws", upd(10, 15)), ("ws", upd(15, 15)), ("ws", upd(15, 3)), ("ws", upd(3, 5))],
        [A, A, A, A, A],
        5,
    ),
    "duplicate": ([("ws", snap(10)), ("ws", upd(10, 15)), ("ws", upd(10, 15))], [A, A, D], 15),
    "duplicate_of_an_earlier_update": (
        [("ws", snap(10)), ("ws", upd(10, 15)), ("ws", upd(15, 22)), ("ws", upd(10, 15))],
        [A, A, A, D],
        22,
    ),
    # the reset message (15 -> 3) was lost: 3 -> 5 is a gap, not an "older copy" (the book would freeze)
    "reset_missed": ([("ws", snap(10)), ("ws", upd(10, 15)), ("ws", upd(3, 5))], [A, A, G], None),
    # a snapshot is authoritative: after a reset it replaces the book although its seqId is lower
    "snapshot_after_reset": (
        [("ws", snap(10)), ("ws", upd(10, 15)), ("ws", snap(3)), ("ws", upd(3, 5))],
        [A, A, A, A],
        5,
    ),
    "gap": ([("ws", snap(10)), ("ws", upd(12, 15))], [A, G], None),
    # without a book, updates are buffered (for a REST snapshot to bridge, EXCHANGES.md 3.6)
    "out_of_order": ([("ws", snap(10)), ("ws", upd(15, 20)), ("ws", upd(10, 15))], [A, G, B], None),
    "update_before_snapshot": ([("ws", upd(3, 4)), ("ws", snap(10)), ("ws", upd(10, 11))], [B, A, A], 11),
    "resubscribe_after_gap": (
        [("ws", snap(10)), ("ws", upd(12, 15)), ("ws", upd(15, 16)), ("ws", snap(20)), ("ws", upd(20, 21))],
        [A, G, B, A, A],
        21,
    ),
}

DERIBIT = {
    "in_order": ([("ws", snap(100)), ("ws", upd(100, 101)), ("ws", upd(101, 105))], [A, A, A], 105),
    "duplicate": ([("ws", snap(100)), ("ws", upd(100, 101)), ("ws", upd(100, 101))], [A, A, D], 101),
    "reset_missed": ([("ws", snap(100)), ("ws", upd(100, 101)), ("ws", upd(3, 4))], [A, A, G], None),
    "snapshot_after_reset": ([("ws", snap(100)), ("ws", upd(100, 101)), ("ws", snap(3))], [A, A, A], 3),
    "gap": ([("ws", snap(100)), ("ws", upd(101, 102))], [A, G], None),
    "out_of_order": ([("ws", snap(100)), ("ws", upd(101, 102)), ("ws", upd(100, 101))], [A, G, D], None),
    "resubscribe_after_gap": (
        [("ws", snap(100)), ("ws", upd(101, 102)), ("ws", snap(200)), ("ws", upd(200, 201))],
        [A, G, A, A],
        201,
    ),
}


@pytest.mark.parametrize(
    ("kind", "case"),
    [
        (k, c)
        for k, table in [
            ("binance_spot", BINANCE_SPOT),
            ("binance_futures", BINANCE_FUTURES),
            ("okx", OKX),
            ("deribit", DERIBIT),
        ]
        for c in table
    ],
)
def test_sync_table(kind: str, case: str) -> None:
    table = {"binance_spot": BINANCE_SPOT, "binance_futures": BINANCE_FUTURES, "okx": OKX, "deribit": DERIBIT}[kind]
    steps, expected, last = table[case]
    verdicts, sync = run(kind, steps)
    assert verdicts == expected
    assert sync.last == last
    assert sync.valid == (last is not None)
    if G in verdicts and last is None:
        assert sync.needs_resync and sync.counters.gaps >= 1 and len(sync.book) == 0


def test_gap_discards_book_and_counts_resync() -> None:
    sync = BookSync("deribit")
    sync.on_message(snap(1), Levels([10.0], [1.0], [11.0], [2.0]))
    assert sync.book.best_bid() == (10.0, 1.0)
    assert sync.on_message(upd(5, 6)) is G
    assert len(sync.book) == 0 and not sync.valid and sync.needs_resync
    assert (sync.counters.gaps, sync.counters.resyncs) == (1, 1)
    assert sync.last_gap is not None and "after 1" in sync.last_gap


def test_delete_of_unknown_level_is_normal() -> None:
    for kind in ("binance_futures", "okx", "deribit"):
        sync = BookSync(kind)
        if kind == "binance_futures":
            sync.on_rest_snapshot(snap(10), Levels([10.0], [1.0], [11.0], [2.0]))
            verdict = sync.on_message(diff(9, 12, 8), Levels([9.5], [0.0], [12.0], [0.0]))
        else:
            sync.on_message(snap(10), Levels([10.0], [1.0], [11.0], [2.0]))
            verdict = sync.on_message(upd(10, 12), Levels([9.5], [0.0], [12.0], [0.0]))
        assert verdict is A, kind
        assert sync.book.top(5) == ([(10.0, 1.0)], [(11.0, 2.0)])
        assert sync.counters.gaps == 0


def _crc(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    c = zlib.crc32(":".join(parts).encode())
    return c - (1 << 32) if c >= 1 << 31 else c


def _okx(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Levels:
    return Levels(
        [float(p) for p, _ in bids],
        [float(s) for _, s in bids],
        [float(p) for p, _ in asks],
        [float(s) for _, s in asks],
        [p for p, _ in bids],
        [s for _, s in bids],
        [p for p, _ in asks],
        [s for _, s in asks],
    )


def test_okx_checksum_ok_bad_and_zero() -> None:
    sync = BookSync("okx", keep_text=True, checksum=_crc)
    bids, asks = [("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]
    # EXCHANGES.md test vector: 3366.1:7:3366.8:9:3366:6:3368:8 -> -1881014294
    assert sync.on_message(snap(1)._replace(checksum=-1881014294), _okx(bids, asks)) is A
    assert sync.counters.checksum_ok == 1
    # checksum 0 (production since 2026-06-23): skipped, never failed
    assert sync.on_message(upd(1, 2, checksum=0), _okx([], [])) is A
    assert sync.counters.checksum_skipped == 1
    # delete bid 3366 and add ask 3372: vector 3366.1:7:3366.8:9:3368:8:3372:8 -> 831078360
    assert sync.on_message(upd(2, 3, checksum=831078360), _okx([("3366", "0")], [("3372", "8")])) is A
    assert sync.counters.checksum_ok == 2
    assert sync.on_message(upd(3, 4, checksum=12345), _okx([("3366.1", "8")], [])) is G
    assert sync.counters.checksum_failed == 1 and not sync.valid and sync.needs_resync


def test_binance_buffer_is_bounded() -> None:
    from xtrader import sync as sync_module

    sync = BookSync("binance_spot")
    for i in range(sync_module.MAX_BUFFERED + 5):
        assert sync.on_message(diff(i * 2 + 1, i * 2 + 2)) is B
    assert len(sync.buffer) == sync_module.MAX_BUFFERED


def test_rest_snapshot_older_than_a_valid_book_is_ignored() -> None:
    sync = BookSync("binance_futures")
    sync.on_rest_snapshot(snap(50), Levels([10.0], [1.0], [11.0], [2.0]))
    assert sync.on_message(diff(45, 60, 44), Levels([10.0], [3.0], [], [])) is A
    assert sync.on_rest_snapshot(snap(55), Levels([9.0], [1.0], [12.0], [1.0])) is D
    assert sync.last == 60 and sync.book.best_bid() == (10.0, 3.0) and sync.counters.gaps == 0


def test_a_gap_in_the_rest_replay_buffers_the_gap_message_once() -> None:
    sync = BookSync("binance_spot")
    for first, last in ((100, 105), (110, 115), (116, 120)):
        assert sync.on_message(diff(first, last)) is B
    # the snapshot bridges 100..105; 110..115 then breaks the chain: it waits, with what follows, for the next one
    assert sync.on_rest_snapshot(snap(103), EMPTY) is G
    assert [(m.first_seq, m.seq) for m, _ in sync.buffer] == [(110, 115), (116, 120)]
    assert sync.on_rest_snapshot(snap(112), EMPTY) is A
    assert sync.last == 120 and sync.counters.gaps == 1


@pytest.mark.parametrize("kind", ["okx", "deribit"])
def test_updates_seen_while_waiting_for_the_resubscription_snapshot_bridge_it(kind: str) -> None:
    """Redundancy: the copy that did not resubscribe is ahead; the arbiter passed its updates while the
    book was invalid, so it will not pass them again after the snapshot: the book keeps them meanwhile."""
    sync = BookSync(kind)
    assert sync.on_message(snap(10)) is A
    assert sync.on_message(upd(20, 30)) is G  # lost updates: resync
    kept = B if kind == "okx" else D  # OKX buffers for a REST bridge; either way the update is kept aside
    assert sync.on_message(upd(30, 40), Levels([5.0], [1.0], [], [])) is kept  # no book yet
    assert sync.on_message(upd(40, 50), Levels([5.0], [2.0], [], [])) is kept
    assert sync.on_message(snap(40), Levels([5.0], [1.0], [6.0], [1.0])) is A  # the resubscribed copy's snapshot
    assert sync.last == 50 and sync.book.best_bid() == (5.0, 2.0)  # ... bridged by what was kept
    assert sync.on_message(upd(50, 60)) is A
    assert sync.counters.gaps == 1
