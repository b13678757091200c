"""Binance's typed (msgspec) decoding of the hot frames appends exactly what the dict parser appends, and takes
no frame the dict parser would reject: anything else falls through to the dict parser, strict as before."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import xtrader.venues.binance as binance
from xtrader.batch import Columns
from xtrader.clock import Receipt
from xtrader.errors import ParseError
from xtrader.venues import venue

DEPTH = {
    "e": "depthUpdate",
    "E": 1700000000123,
    "T": 1700000000120,
    "s": "BTCUSDT",
    "U": 10,
    "u": 12,
    "pu": 9,
    "b": [["100.5", "1.25"], ["100.4", "0"]],
    "a": [["101", "2"]],
}
AGG = {"e": "aggTrade", "E": 1, "a": 5, "s": "BTCUSDT", "p": "1.5", "q": "2", "f": 1, "l": 2, "T": 3, "m": True}
TRADE = {"e": "trade", "E": 1, "t": 7, "s": "BTCUSDT", "p": "1.5", "q": "2", "T": 3, "m": False}
TICKER = {"e": "bookTicker", "u": 4, "E": 1, "T": 2, "s": "BTCUSDT", "b": "1", "B": "2", "a": "3", "A": "4"}


def frame(data: dict[str, Any], stream: str = "btcusdt@depth@100ms") -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def buffers(out: Columns) -> dict[str, list[Any]]:
    return {f"{t.__class__.__name__}.{n}": list(getattr(t, n)) for t in out._tables() for n in t._lists()}


def parse_both(name: str, frames: list[bytes], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, int]:
    """(typed buffers and errors, dict-only buffers and errors, frames the typed path took)."""
    v = venue(name)
    taken = 0
    typed = binance._typed

    def counting(*args: Any) -> bool:
        nonlocal taken
        ok = typed(*args)
        taken += ok
        return ok

    results = []
    for decoder in (counting, lambda *args: False):
        monkeypatch.setattr(binance, "_typed", decoder)
        out, errors = Columns(v.name), []  # the Python parser's lists (v.columns() would buffer in C)
        for i, f in enumerate(frames):
            try:
                errors.append(v.parse(f, Receipt(1_700_000_000_000_000_000 + i, i), out))
            except ParseError as exc:
                errors.append(str(exc))
        results.append((buffers(out), errors))
    return results[0], results[1], taken


@pytest.mark.parametrize("name", ["binance", "binance_futures"])
def test_typed_equals_dict_parser_on_captures(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.captures import ws_frames

    frames = ws_frames(name)
    typed, plain, taken = parse_both(name, frames, monkeypatch)
    assert typed == plain
    assert taken > len(frames) // 2


def test_typed_equals_dict_parser_on_generated_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    from xtrader.bench.feed import frames

    data, _ = frames(500, 3)
    typed, plain, taken = parse_both("binance_futures", data, monkeypatch)
    assert typed == plain and taken == len(data)


def test_hot_frames_take_the_typed_path() -> None:
    v = venue("binance_futures")
    for data, stream in (
        (DEPTH, "btcusdt@depth@100ms"),
        (AGG, "btcusdt@aggTrade"),
        (TRADE, "btcusdt@trade"),
        (TICKER, "btcusdt@bookTicker"),
        ({k: v for k, v in DEPTH.items() if k not in ("T", "pu")}, "btcusdt@depth"),  # spot shape
    ):
        assert binance._typed(frame(data, stream), 1_000_000, 0, v.columns()), data


@pytest.mark.parametrize(
    ("data", "field", "value"),
    [
        (DEPTH, "u", "12"),  # an int given a string
        (DEPTH, "u", True),  # ... a bool
        (DEPTH, "u", 12.0),  # ... a float
        (DEPTH, "pu", "9"),
        (DEPTH, "U", "10"),
        (DEPTH, "T", "1"),
        (DEPTH, "s", 1),
        (DEPTH, "b", [["100.5", 1.25]]),  # a number where the level's text is expected
        (DEPTH, "b", [["100.5"]]),  # a short level
        (DEPTH, "b", "x"),
        (AGG, "a", "5"),
        (AGG, "m", "true"),
        (AGG, "p", 1.5),
        (AGG, "T", None),
        (TRADE, "t", None),
        (TICKER, "u", "4"),
        (TICKER, "b", 1),
    ],
)
def test_a_wrong_type_is_still_a_parse_error(data: dict[str, Any], field: str, value: Any) -> None:
    v = venue("binance_futures")
    bad = frame({**data, field: value})
    out = v.columns()
    assert not binance._typed(bad, 1_000_000, 0, out)  # the typed decoder declines it ...
    assert out.rows() == 0 and not out.l2.symbol
    with pytest.raises(ParseError):  # ... and the dict parser rejects it, as it always did
        v.parse(bad, Receipt(0, 0), out)
    assert out.rows() == 0 and not out.l2.symbol


@pytest.mark.parametrize(
    "data",
    [
        {**DEPTH, "b": [["100.5", "1", "extra"]]},  # a level with more than price and size
        {k: v for k, v in DEPTH.items() if k != "E" and k != "T"} | {"E": 5},
        {**DEPTH, "e": "depthUpdate", "U": None},
    ],
)
def test_shapes_the_structs_do_not_describe_parse_as_before(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    typed, plain, _ = parse_both("binance_futures", [frame(data)], monkeypatch)
    assert typed == plain
