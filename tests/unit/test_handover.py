"""handover: proving two links overlap before the old one is closed."""

from __future__ import annotations

from xtrader.handover import Handover


def test_no_proof_until_a_frame_arrives_on_both_links():
    handover = Handover()
    assert not handover.observe("old", b"a", 1)
    assert not handover.observe("old", b"b", 2)
    assert not handover.observe("new", b"c", 3)
    assert not handover.proven and handover.duplicates == 0


def test_the_first_frame_seen_twice_proves_the_overlap_whichever_link_was_first():
    old_first = Handover()
    old_first.observe("old", b"x", 1)
    assert old_first.observe("new", b"x", 5)
    assert old_first.proven_ns == 5

    new_first = Handover()
    new_first.observe("new", b"x", 1)
    assert new_first.observe("old", b"x", 7)
    assert new_first.proven_ns == 7


def test_duplicates_are_counted_once_per_pair_and_the_proof_time_stays_the_first():
    handover = Handover()
    for t, frame in enumerate([b"1", b"2", b"3"]):
        handover.observe("old", frame, t)
    for t, frame in enumerate([b"2", b"3", b"4"], start=10):
        handover.observe("new", frame, t)
    assert handover.duplicates == 2 and handover.proven_ns == 10
    assert not handover.observe("new", b"2", 20)  # already matched: a third copy is a new frame


def test_memory_is_bounded():
    handover = Handover(max_seen=3)
    for i in range(10):
        handover.observe("old", b"%d" % i, i)
    assert not handover.observe("new", b"9", 11)  # forgotten past the bound
    assert handover.observe("new", b"1", 12)
