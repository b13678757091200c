"""A redundant stream's book waits briefly for a missing update that its other connection may still deliver.

With two connections on one stream, the arbiter passes each update from whichever copy it filters first. Two
connections that both run continuously never reorder anything that way, but a connection that has just
(re)connected starts at the newest updates, and its first batch can reach the book before its partner's last
ones (deferred by a busy pipeline, or in flight): seen in a faults soak as a gap and a REST resync although
nothing was missing (benchmarks/RESULTS.md, "a gap when a redundant connection and the sink die together").
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.test_services import NOW, Clock, l2_batch
from xtrader.batch import Batches, BookNotice
from xtrader.bookservice import GAP_HOLD_S, BookService

S = "BTCUSDT"
R0, R1 = "binance_futures/c0/r0", "binance_futures/c0/r1"


def carried(batches: Batches, *sources: str) -> Batches:
    return replace(batches, notices=tuple(BookNotice(S, "carried", source, "link open") for source in sources))


def updates(first: int, last: int) -> list[tuple[str, int, int | None, int | None, bool, list, list]]:
    """Binance USD-M diffs first..last, one id each (U = u, pu = u - 1), each setting bid 100 + u to u."""
    return [(S, u, u - 1, u, False, [(100.0 + u, float(u))], []) for u in range(first, last + 1)]


def feed(service: BookService, connection: str, first: int, last: int) -> object:
    return service.on_batch(connection, l2_batch("binance_futures", updates(first, last)))


def synced(clock: Clock | None = None, *, redundant: bool = True) -> BookService:
    """A binance_futures book valid at update 10, carried by one or two connections."""
    service = BookService("binance_futures", "binance_futures", clock=clock or Clock())
    first = l2_batch("binance_futures", updates(1, 10))
    service.on_batch(R0, carried(first, R0, R1) if redundant else carried(first, R0))
    snapshot = l2_batch("binance_futures", [(S, 5, None, None, True, [(1.0, 1.0)], [(1000.0, 1.0)])])
    service.on_batch(R0, snapshot, rest=True)
    assert service.sync(S).last == 10
    return service


def expected_bids(last: int) -> list[tuple[float, float]]:
    """The bids after updates up to `last` over the snapshot at 5 (update 5, u == lastUpdateId, is applied)."""
    return [(100.0 + u, float(u)) for u in range(last, 4, -1)] + [(1.0, 1.0)]


def test_a_reconnected_copy_ahead_of_its_partners_backlog_is_not_a_gap() -> None:
    service = synced()
    # r1 has just reconnected: its first batch starts at the newest updates, ahead of r0's 11..20 still on the way
    ahead = service.on_batch(R1, carried(l2_batch("binance_futures", updates(21, 30)), R1))
    assert ahead.resyncs == [] and ahead.events is None
    behind = feed(service, R0, 11, 20)  # r0's backlog (the arbiter lets it through: nobody delivered it)
    feed(service, R1, 31, 35)
    assert service.stats()["counters"]["gaps"] == 0
    assert behind.resyncs == [] and behind.events is None  # type: ignore[attr-defined]
    assert service.sync(S).last == 35
    assert service.tops(40)[S] == (expected_bids(35), [(1000.0, 1.0)])


def test_the_wait_is_bounded_then_the_gap_is_real_and_the_held_updates_bridge_the_next_snapshot() -> None:
    clock = Clock()
    service = synced(clock)
    out = feed(service, R1, 21, 30)  # 11..20 never come
    assert out.resyncs == [] and service.sync(S).valid  # type: ignore[attr-defined]
    clock.now += int(GAP_HOLD_S * 1e9) // 2
    assert service.tick()[2] == []  # still waiting
    clock.now += int(GAP_HOLD_S * 1e9)
    _, events, resyncs = service.tick()
    assert [symbol for _, symbol in resyncs] == [S] and not service.sync(S).valid
    assert events is not None and events.column("kind").to_pylist() == ["gap", "resync"]
    assert "seq 21" in events.column("detail").to_pylist()[0]
    # the REST snapshot taken for the resync bridges the updates held meanwhile
    snapshot = l2_batch("binance_futures", [(S, 25, None, None, True, [(1.0, 1.0)], [(1000.0, 1.0)])])
    service.on_batch(R0, snapshot, rest=True)
    assert service.sync(S).last == 30
    assert service.tops()[S][0][:5] == [(130.0, 30.0), (129.0, 29.0), (128.0, 28.0), (127.0, 27.0), (126.0, 26.0)]


def test_the_wait_ends_on_the_next_batch_after_its_deadline_too() -> None:
    clock = Clock()
    service = synced(clock)
    feed(service, R1, 21, 30)
    clock.now += int(GAP_HOLD_S * 1e9) + 1
    out = feed(service, R1, 31, 31)
    assert [symbol for _, symbol in out.resyncs] == [S] and not service.sync(S).valid  # type: ignore[attr-defined]


def test_a_restarted_book_knows_a_redundant_stream_from_the_plan_before_any_notice() -> None:
    service = BookService("binance_futures", "binance_futures", clock=Clock())
    service.set_carriers({R0: [S], R1: [S]})  # what a restarted OrderBookActor gets from the plan
    service.on_batch(R0, l2_batch("binance_futures", updates(1, 10)))
    snapshot = l2_batch("binance_futures", [(S, 5, None, None, True, [(1.0, 1.0)], [(1000.0, 1.0)])])
    service.on_batch(R0, snapshot, rest=True)
    out = feed(service, R1, 21, 30)
    assert out.resyncs == [] and service.sync(S).valid  # type: ignore[attr-defined]
    feed(service, R0, 11, 20)
    assert service.sync(S).last == 30 and service.stats()["counters"]["gaps"] == 0


def test_a_book_carried_by_one_connection_resyncs_at_once() -> None:
    service = synced(redundant=False)
    out = feed(service, R0, 21, 30)
    assert out.resyncs == [(R0, S)] and not service.sync(S).valid  # type: ignore[attr-defined]


def test_a_book_waiting_for_a_missing_update_is_not_emitted_as_a_snapshot() -> None:
    service = synced()
    assert service.tick(force=True)[0] is not None
    feed(service, R1, 21, 30)
    snapshots, _, _ = service.tick(force=True)
    assert snapshots is None  # its state is an old one: no book_snapshots row stamped now
    feed(service, R0, 11, 20)
    assert service.tick(force=True)[0] is not None


@pytest.mark.parametrize("venue", ["okx", "deribit"])
def test_okx_and_deribit_chains_wait_the_same_way(venue: str) -> None:
    service = BookService(venue, venue, clock=Clock())
    both = (BookNotice("P", "carried", "a", "open"), BookNotice("P", "carried", "b", "open"))
    service.on_batch(
        "a", replace(l2_batch(venue, [("P", 10, None, None, True, [(1.0, 1.0)], [(9.0, 1.0)])]), notices=both)
    )
    service.on_batch("b", l2_batch(venue, [("P", 14, 12, None, False, [(3.0, 3.0)], [])], NOW + 3))
    service.on_batch("a", l2_batch(venue, [("P", 12, 10, None, False, [(2.0, 2.0)], [])], NOW + 2))
    assert service.stats()["counters"]["gaps"] == 0
    assert service.sync("P").last == 14
    assert service.tops()["P"] == ([(3.0, 3.0), (2.0, 2.0), (1.0, 1.0)], [(9.0, 1.0)])
