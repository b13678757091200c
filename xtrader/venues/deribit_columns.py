"""Column buffers of one Deribit connection, with the compiled parser's C buffers beside the Python lists.

`_deribit_fast.Accumulator` (xtrader/venues/_deribit_fast.c) parses the hot frames (`subscription` notifications of
`book.*`, `trades.*`, `quote.*` and `ticker.*`) from bytes into C arrays; every other frame goes through the Python
parser into the lists (xtrader/venues/compiled_columns.py keeps the row order and builds the batches).

`COMPILED` is False when the extension was not built (a source checkout without `pip install -e .`) or when
`XTRADER_PURE_PYTHON=1`: then `DeribitColumns` is never made and the Python parser takes every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from xtrader.venues.compiled_columns import CompiledColumns, compiled

try:
    from xtrader.venues import _deribit_fast
except ImportError:  # not built: the Python parser takes every frame
    _deribit_fast = None  # type: ignore[assignment]

COMPILED = compiled(_deribit_fast)


@dataclass
class DeribitColumns(CompiledColumns):
    """`CompiledColumns` for Deribit: JSON numbers on the wire (the lists hold them as numbers, so C spills floats),
    trade ids strings."""

    accumulator: ClassVar[Any] = _deribit_fast.Accumulator if _deribit_fast is not None else None
    spill_text: ClassVar[bool] = False
    trade_id: ClassVar[Any] = str
