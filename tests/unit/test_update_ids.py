"""Row ids (`xtrader.update_ids`): one int per update key, equal exactly when the keys are, whatever the Arrow
layout of the columns; the arbiter offers them instead of key tuples."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.captures import FILES, capture_path
from xtrader import update_ids
from xtrader.arbiter_batches import BatchArbiter, UpdateKeys
from xtrader.update_ids import row_ids
from xtrader.verify import verify

PURE = os.environ.get("XTRADER_PURE_PYTHON", "") in ("1", "true", "yes")
pytestmark = pytest.mark.skipif(PURE, reason="XTRADER_PURE_PYTHON=1: key tuples by request")

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BTCUSDT", "X" * 21, "", None]
SEQS = [1, 2, 3, None, 2**63 - 1, -(2**63)]


def test_ids_are_made_in_c() -> None:
    assert update_ids.available(), "xtrader/_arbiter.c is not built: pip install -e ."


def test_an_id_does_not_depend_on_the_columns_layout() -> None:
    symbols, seqs = pa.array(SYMBOLS), pa.array(SEQS, pa.int64())
    ids = row_ids("l2", [symbols, seqs])
    assert ids is not None and len(ids) == len(SYMBOLS)
    assert row_ids("l2", [symbols.dictionary_encode(), seqs]) == ids
    assert row_ids("l2", [symbols.cast(pa.large_string()), seqs]) == ids
    assert row_ids("l2", [pa.chunked_array([symbols[:2], symbols[2:]]), pa.chunked_array([seqs[:4], seqs[4:]])]) == ids
    assert row_ids("l2", [symbols.slice(2), seqs.slice(2)]) == ids[2:]  # an offset into the buffers
    assert row_ids("l2", [symbols.dictionary_encode().slice(1, 3), seqs.slice(1, 3)]) == ids[1:4]
    small = pa.array([1, 2, 3], pa.int32())
    assert row_ids("trades", [small]) == row_ids("trades", [small.cast(pa.int64())])
    assert row_ids("l2", [pa.nulls(3, pa.int64())]) == row_ids("l2", [pa.array([None] * 3, pa.int64())])
    assert row_ids("l2", [pa.array([], pa.string())]) == []


def test_ids_tell_apart_what_keys_tell_apart() -> None:
    def one(table: str, *values: Any) -> int:
        got = row_ids(table, [pa.array([v]) if not isinstance(v, pa.Array) else v for v in values])
        assert got is not None
        return got[0]

    texts = ["a", "a\0", "", "ab", "abcdefgh", "abcdefgh\0", "abcdefghi"]
    assert len({one("trades", pa.array([t])) for t in texts}) == len(texts)
    assert one("trades", pa.array([None], pa.string())) != one("trades", pa.array([""]))
    assert one("l2", pa.array([None], pa.int64())) != one("l2", pa.array([0], pa.int64()))
    assert one("l2", pa.array([1]), pa.array([2])) != one("l2", pa.array([2]), pa.array([1]))  # the columns' order
    assert one("l2", pa.array([1])) != one("trades", pa.array([1]))  # a salt per table


keys = st.lists(
    st.tuples(
        st.sampled_from(["BTCUSDT", "ETHUSDT", "", "BTC-USDT-SWAP"]),
        st.integers(-5, 5),
        st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        st.one_of(st.none(), st.text(max_size=12)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(rows=keys, dictionary=st.booleans(), cut=st.integers(0, 60))
def test_two_rows_have_one_id_exactly_when_their_keys_are_equal(rows: list[Any], dictionary: bool, cut: int) -> None:
    if not rows:
        return
    symbols, small, big, texts = (list(c) for c in zip(*rows, strict=True))
    columns = [pa.array(symbols, pa.string()), pa.array(small, pa.int64()), pa.array(big, pa.int64())]
    columns.append(pa.array(texts, pa.string()))
    if dictionary:
        columns[0] = columns[0].dictionary_encode()
    cut = min(cut, len(rows))
    chunked = [pa.chunked_array([c[:cut], c[cut:]]) for c in columns]
    ids = row_ids("trades", chunked)
    assert ids is not None
    assert len(set(zip(rows, ids, strict=True))) == len(set(rows)) == len(set(ids))


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_real_capture_has_as_many_ids_as_keys(name: str) -> None:
    # no two different keys of a venue's real updates share an id, and copies of one update share it
    keys = UpdateKeys()
    pairs: set[tuple[Any, int]] = set()
    for _connection, batches in verify(capture_path(name)).batches:
        if batches.trades is not None:
            pairs.update(zip(keys.trades(batches.trades), keys.trade_ids(batches.trades), strict=True))
        if batches.l2_messages is not None:
            pairs.update(zip(keys.l2(batches.l2_messages), keys.l2_ids(batches.l2_messages), strict=True))
    assert pairs, f"{name}: no updates"
    assert len({key for key, _ in pairs}) == len({i for _, i in pairs}) == len(pairs)


def test_the_batch_arbiter_offers_ids_and_drops_a_copy_on_another_connection() -> None:
    trades = pa.RecordBatch.from_pydict(
        {"symbol": pa.array(["A", "A", "B"]).dictionary_encode(), "trade_id": ["1", "2", "1"]}
    )
    arbiter = BatchArbiter()
    assert arbiter._keep("c0", "trades", trades, arbiter.keys.trade_ids(trades), 0) is trades
    assert arbiter._keep("c1", "trades", trades, arbiter.keys.trade_ids(trades), 1) is None
    assert all(isinstance(key, int) for key in arbiter.arbiter.tables["trades"])
    assert arbiter.arbiter.stats.as_dict()["duplicates"] == 3


def test_bad_columns_are_refused_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="a key column of type double"):
        row_ids("l2", [pa.array([1.5])])
    with pytest.raises(ValueError, match="columns of 1 and 2 rows"):
        row_ids("l2", [pa.array([1, 2]), pa.array([1])])
    h = np.zeros(4, dtype=np.uint64)
    with pytest.raises(ValueError, match="values shorter than h"):
        update_ids._arbiter.mix_int64(h, np.zeros(3, dtype=np.int64), None, 0)
    with pytest.raises(ValueError, match="offsets shorter than out"):
        update_ids._arbiter.str_words(h, np.zeros(2, dtype=np.int32), b"", 0)
    with pytest.raises(ValueError, match="an offset outside the data"):
        update_ids._arbiter.str_words(h[:1], np.array([0, 9], dtype=np.int32), b"abc", 0)


def test_without_the_c_extension_the_keys_are_tuples(monkeypatch: pytest.MonkeyPatch) -> None:
    trades = pa.RecordBatch.from_pydict({"symbol": ["A"], "trade_id": ["1"]})
    monkeypatch.setattr(update_ids, "_c", None)
    assert row_ids("trades", [trades.column("symbol")]) is None
    assert UpdateKeys().trade_ids(trades) == [("trades", "A", "1")]
