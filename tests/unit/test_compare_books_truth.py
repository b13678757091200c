"""compare_books checks only books whose simulator state was actually sent (issue 4)."""

from xtrader.driver.truth import _truth_seq, _truth_was_sent


def test_truth_sequence_of_each_venue_rest_shape() -> None:
    assert _truth_seq({"lastUpdateId": 41, "bids": [], "asks": []}) == 41
    assert _truth_seq({"jsonrpc": "2.0", "result": {"change_id": 7, "bids": [], "asks": []}}) == 7
    assert _truth_seq({"code": "0", "msg": "", "data": [{"seqId": 9, "bids": [], "asks": []}]}) == 9
    assert _truth_seq({"bids": [], "asks": []}) is None


def test_a_book_whose_last_updates_were_never_sent_is_not_checked() -> None:
    # deribit, seen in a faults run: the last update written to any socket was 70000860352,
    # the simulator had published up to 70000860420 (the rest dropped / lost with a killed link)
    book = {"result": {"change_id": 70000860420, "bids": [], "asks": []}}
    assert not _truth_was_sent(book, {"first": 70000857197, "last": 70000860352})
    assert _truth_was_sent(book, {"first": 70000857197, "last": 70000860420})
    assert _truth_was_sent(book, None)  # unknown: checked
    assert _truth_was_sent({"bids": [], "asks": []}, {"first": 1, "last": 2})
