"""Column buffers of one OKX connection, with the compiled parser's C buffers beside the Python lists.

`_okx_fast.Accumulator` (xtrader/venues/_okx_fast.c) parses the hot frames (data pushes of the books, books5,
books-l2-tbt, books50-l2-tbt, trades, bbo-tbt and tickers channels) from bytes into C arrays, keeping each book
level's exact price and size text (the checksum's input); every other frame goes through the Python parser into the
lists (xtrader/venues/compiled_columns.py keeps the row order and builds the batches).

`COMPILED` is False when the extension was not built (a source checkout without `pip install -e .`) or when
`XTRADER_PURE_PYTHON=1`: then `OkxColumns` is never made and the Python parser takes every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from xtrader.venues.compiled_columns import CompiledColumns, compiled

try:
    from xtrader.venues import _okx_fast
except ImportError:  # not built: the Python parser takes every frame
    _okx_fast = None  # type: ignore[assignment]

COMPILED = compiled(_okx_fast)


@dataclass
class OkxColumns(CompiledColumns):
    """`CompiledColumns` for OKX: decimal strings on the wire (spilled as text; l2 levels as their exact wire
    text, with `keep_text`), trade ids strings."""

    accumulator: ClassVar[Any] = _okx_fast.Accumulator if _okx_fast is not None else None
    trade_id: ClassVar[Any] = str
