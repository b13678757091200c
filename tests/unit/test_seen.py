"""xtrader.seen: the sink's per-source seen state, its skip ranges, its bound and its file."""

from __future__ import annotations

from pathlib import Path

from xtrader.seen import Seen, SeenState


def test_skipped_ranges_move_the_floor_past_gaps() -> None:
    seen = Seen()
    assert seen.add(0) and seen.add(3)
    seen.skip(1, 2)
    assert seen.floor == 3 and not seen.above
    seen.skip(10, 12)  # above a gap (4..9): kept as seqs above the floor
    assert seen.floor == 3 and 11 in seen and 5 not in seen
    seen.skip(4, 9)
    assert seen.floor == 12 and not seen.above
    seen.skip(1_000_000, 10_000_000)  # a huge range far above: the gap below it is given up, no huge set
    assert seen.floor == 10_000_000 and not seen.above and seen.skipped == 1


def test_the_state_round_trips_through_its_file(tmp_path: Path) -> None:
    state = SeenState()
    for seq in (0, 1, 2, 5):
        state.add("a|c0#1", seq)
    state.skip([("b#2", 0, 9)])
    state.save(tmp_path / "seen.json")
    loaded = SeenState.load(tmp_path / "seen.json")
    assert ("a|c0#1", 2) in loaded and ("a|c0#1", 5) in loaded and ("a|c0#1", 3) not in loaded
    assert ("b#2", 9) in loaded and ("b#2", 10) not in loaded
    assert not list(tmp_path.glob(".*.tmp"))
    assert len(SeenState.load(tmp_path / "missing.json")) == 0


def test_the_least_recently_written_source_is_forgotten_beyond_the_bound() -> None:
    state = SeenState(max_sources=3)
    for source in ("a", "b", "c"):
        state.add(source, 0)
    state.add("a", 1)  # a is recent again
    state.add("d", 0)
    assert set(state) == {"a", "c", "d"} and state.forgotten == 1
