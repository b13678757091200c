"""Column buffers of one Binance connection, with the compiled parser's C buffers beside the Python lists.

`_binance_fast.Accumulator` (xtrader/venues/_binance_fast.c) parses the hot frames (combined-stream depthUpdate,
aggTrade, trade, bookTicker) from bytes into C arrays; every other frame goes through the Python parser into the
lists (xtrader/venues/compiled_columns.py keeps the row order and builds the batches).

`COMPILED` is False when the extension was not built (a source checkout without `pip install -e .`) or when
`XTRADER_PURE_PYTHON=1`: then `BinanceColumns` is never made and the Python parser takes every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from xtrader.venues.compiled_columns import CompiledColumns, compiled

try:
    from xtrader.venues import _binance_fast
except ImportError:  # not built: the Python parser takes every frame
    _binance_fast = None  # type: ignore[assignment]

COMPILED = compiled(_binance_fast)


@dataclass
class BinanceColumns(CompiledColumns):
    """`CompiledColumns` for Binance: decimal strings on the wire (spilled as text), trade ids ints."""

    accumulator: ClassVar[Any] = _binance_fast.Accumulator if _binance_fast is not None else None
    trade_id: ClassVar[Any] = int
