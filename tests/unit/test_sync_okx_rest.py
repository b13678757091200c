"""OKX books bridged from the REST snapshot (EXCHANGES.md 3.6; OKX changelog 12 Feb 2026), as sync tables.

The announced procedure: buffer the stream; GET /api/v5/market/books; if the snapshot's seqId is below
the prevSeqId of the first buffered update, fetch again; drop buffered updates with seqId <= the
snapshot's; the first kept one satisfies prevSeqId <= snapshot seqId < seqId; then prevSeqId == last.
"""

from __future__ import annotations

import pytest

from xtrader.sync import EMPTY, BookSync, Levels, Message, Verdict

A, D, B, G, S = Verdict.APPLY, Verdict.DROP, Verdict.BUFFER, Verdict.GAP, Verdict.STALE


def upd(prev: int, seq: int) -> Message:
    return Message(seq=seq, prev_seq=prev, first_seq=None, is_snapshot=False, checksum=0)


def ws_snap(seq: int) -> Message:
    return Message(seq=seq, prev_seq=None, first_seq=None, is_snapshot=True, checksum=0)


def rest(seq: int) -> Message:
    """A REST book: is_snapshot, seq = seqId, no prevSeqId, no checksum (parse_rest_book)."""
    return Message(seq=seq, prev_seq=None, first_seq=None, is_snapshot=True)


def run(steps: list[tuple[str, Message]]) -> tuple[list[Verdict], BookSync]:
    sync = BookSync("okx")
    verdicts = []
    for how, msg in steps:
        verdicts.append(sync.on_rest_snapshot(msg, EMPTY) if how == "rest" else sync.on_message(msg))
    return verdicts, sync


OKX_REST = {
    # updates buffered while no book; the snapshot lands exactly on a stream seqId
    "in_order": (
        [("ws", upd(10, 15)), ("ws", upd(15, 22)), ("rest", rest(15)), ("ws", upd(22, 30))],
        [B, B, A, A],
        30,
    ),
    # the snapshot is older than the first buffered update (seqId < its prevSeqId): fetch again
    "stale_snapshot_refetch": (
        [("ws", upd(100, 140)), ("rest", rest(90)), ("ws", upd(140, 150)), ("rest", rest(140)), ("ws", upd(150, 160))],
        [B, S, B, A, A],
        160,
    ),
    # seqId steps are not +1: a snapshot between two stream seqIds bridges (prevSeqId <= snap < seqId)
    "snapshot_inside_a_step": (
        [("ws", upd(10, 50)), ("ws", upd(50, 93)), ("rest", rest(30)), ("ws", upd(93, 100))],
        [B, B, A, A],
        100,
    ),
    # REST ahead of the websocket: updates at or below the snapshot arriving later are dropped, then the bridge
    "snapshot_ahead_of_the_stream": (
        [("ws", upd(10, 15)), ("rest", rest(40)), ("ws", upd(15, 40)), ("ws", upd(40, 41))],
        [B, A, D, A],
        41,
    ),
    # nothing buffered yet: the next update must still bridge (prevSeqId <= snap < seqId)
    "empty_buffer": ([("rest", rest(20)), ("ws", upd(7, 25)), ("ws", upd(25, 26))], [A, A, A], 26),
    # after the bridge, the usual chain: a broken prevSeqId is a gap, and the book is gone
    "gap_after_the_bridge": (
        [("ws", upd(10, 50)), ("rest", rest(30)), ("ws", upd(60, 70))],
        [B, A, G],
        None,
    ),
    # a snapshot newer than everything buffered, but the next update skips past it: gap
    "gap_in_the_bridge": ([("ws", upd(10, 15)), ("rest", rest(20)), ("ws", upd(25, 30))], [B, A, G], None),
    # a no-change message (prevSeqId == seqId) at the snapshot's seqId chains; one below it is dropped
    "no_change_while_bridging": (
        [("ws", upd(5, 10)), ("rest", rest(20)), ("ws", upd(10, 10)), ("ws", upd(20, 20)), ("ws", upd(20, 24))],
        [B, A, D, A, A],
        24,
    ),
    # after a gap the stream is kept: the next REST snapshot bridges the updates buffered since
    "resync_from_rest_after_a_gap": (
        [("ws", upd(10, 50)), ("rest", rest(30)), ("ws", upd(60, 70)), ("ws", upd(70, 80)), ("rest", rest(75))],
        [B, A, G, B, A],
        80,
    ),
    # both paths: a websocket snapshot, when one comes, replaces the book and the stale buffer
    "ws_snapshot_when_one_comes": (
        [("ws", upd(3, 4)), ("ws", ws_snap(10)), ("ws", upd(10, 11))],
        [B, A, A],
        11,
    ),
}


@pytest.mark.parametrize("case", list(OKX_REST))
def test_okx_rest_bridge_table(case: str) -> None:
    steps, expected, last = OKX_REST[case]
    verdicts, sync = run(steps)
    assert verdicts == expected
    assert sync.last == last
    assert sync.valid == (last is not None)
    if last is None:
        assert sync.needs_resync and sync.counters.gaps == 1 and len(sync.book) == 0


def test_stale_snapshot_keeps_the_buffer_and_asks_again() -> None:
    _, sync = run([("ws", upd(100, 140)), ("rest", rest(90))])
    assert sync.needs_resync and not sync.valid
    assert sync.counters.stale_snapshots == 1 and len(sync.buffer) == 1


def test_bridge_applies_levels_of_kept_updates_only() -> None:
    sync = BookSync("okx")
    sync.on_message(upd(10, 15), Levels([99.0], [1.0], [], []))  # seqId <= the snapshot's: dropped
    sync.on_message(upd(15, 22), Levels([98.0], [2.0], [], []))  # the bridge
    assert sync.on_rest_snapshot(rest(18), Levels([100.0], [5.0], [101.0], [1.0])) is A
    assert sync.book.top(5) == ([(100.0, 5.0), (98.0, 2.0)], [(101.0, 1.0)])
    assert (sync.counters.dropped, sync.counters.updates_applied, sync.counters.snapshots) == (1, 1, 1)


def test_ws_snapshot_drops_what_was_buffered() -> None:
    sync = BookSync("okx")
    sync.on_message(upd(3, 4), Levels([1.0], [1.0], [], []))
    sync.on_message(ws_snap(10), Levels([100.0], [5.0], [], []))
    assert not sync.buffer and sync.book.top(5) == ([(100.0, 5.0)], [])
