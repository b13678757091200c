"""Hive partitioning of stored batches: `<table>/exchange=<x>/date=<YYYY-MM-DD>/`, and how to read it back.

The date comes from each row's own time (`exchange_ts`, else `receive_ts`;
`ts` for events and book_snapshots), in UTC, so a batch that spans midnight
(or several exchanges) is split. Files keep `exchange` as a plain string
column: readers that add the hive column (pyarrow, DuckDB, Polars) then see
one `exchange` column of one type, with the same values, instead of a clash
between the file's dictionary type and the partition's string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from xtrader import schema

NS_PER_DAY = 86_400_000_000_000
_EXCHANGE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def file_schema(table: str) -> pa.Schema:
    """The schema of `table` as stored in Parquet files: `exchange` as string, the rest unchanged."""
    stored = schema.TABLES[table]
    index = stored.get_field_index("exchange")
    return stored.set(index, stored.field(index).with_type(pa.string()))


FILE_SCHEMAS: dict[str, pa.Schema] = {name: file_schema(name) for name in schema.TABLES}

#: price columns, whose values repeat (a book's levels, a market's ticks)
_PRICES = frozenset({"price", "bid_price", "ask_price"})


def dictionary_columns(table: str) -> list[str]:
    """The columns of `table` whose Parquet pages are dictionary-encoded: the few-valued ones (Arrow dictionary
    columns: exchange, symbol, side, kind) and prices. Parquet's default encodes every column so, and for times,
    sequence numbers, ids and sizes, nearly all distinct, that costs CPU and bytes: on the bench feed's l2 and
    trades rows, 200 against 300 ns a row written, and 12.4 against 19.8 bytes a row (benchmarks/RESULTS.md)."""
    stored = schema.TABLES[table]
    return [f.name for f in stored if pa.types.is_dictionary(f.type) or f.name in _PRICES]


DICTIONARY_COLUMNS: dict[str, list[str]] = {name: dictionary_columns(name) for name in schema.TABLES}

#: pass to `pyarrow.dataset.dataset(..., partitioning=PARTITIONING)` to get `date` as date32 like DuckDB
#: and Polars do (plain `partitioning="hive"` works too, with `date` as a string)
PARTITIONING = ds.partitioning(pa.schema([("exchange", pa.string()), ("date", pa.date32())]), flavor="hive")


def dataset(root: str | Path, table: str) -> ds.Dataset:
    """All published files of `table` under `root` as one pyarrow dataset (hive columns included)."""
    return ds.dataset(Path(root) / table, format="parquet", partitioning=PARTITIONING)


@dataclass(frozen=True)
class Piece:
    """Rows of one table for one (exchange, date) partition, in file schema."""

    table: str
    exchange: str
    date: str
    batch: pa.RecordBatch

    def directory(self, root: Path) -> Path:
        return root / self.table / f"exchange={self.exchange}" / f"date={self.date}"


def row_time(table: str, batch: pa.RecordBatch) -> pa.Array:
    """The time that decides each row's date: exchange_ts, else receive_ts; ts where there is no exchange_ts."""
    if "exchange_ts" in batch.schema.names:
        exchange_ts = batch.column("exchange_ts")
        return exchange_ts if not exchange_ts.null_count else pc.coalesce(exchange_ts, batch.column("receive_ts"))
    return batch.column("ts")


def split(table: str, batch: pa.RecordBatch) -> list[Piece]:
    """A conformed stored batch -> one Piece per (exchange, date), rows kept in their order.

    The common batch, one exchange and one day, costs no pass over its rows but the times' min and max: the
    exchange column of one dictionary value is that value repeated.

    Raises:
        ValueError: a row without time, or an exchange name unfit for a directory name.
    """
    nanos = row_time(table, batch).view(pa.int64())  # timestamps: the same buffers (a cast would copy)
    if nanos.null_count:
        raise ValueError(f"{table}: {nanos.null_count} row(s) without a time to partition by")
    index = batch.schema.get_field_index("exchange")
    column = batch.column(index)
    if isinstance(column, pa.DictionaryArray) and len(column.dictionary) == 1 and not column.null_count:
        exchange = pa.repeat(column.dictionary[0], len(column))
        names = column.dictionary.to_pylist()
    else:
        exchange = column.cast(pa.string())
        names = pc.unique(exchange).to_pylist()
    columns = batch.columns
    columns[index] = exchange
    # exactly the file schema (metadata included), so the writer can concatenate pieces freely
    batch = pa.RecordBatch.from_arrays(columns, schema=FILE_SCHEMAS[table])
    for name in names:
        if not isinstance(name, str) or not _EXCHANGE_NAME.match(name):
            raise ValueError(f"{table}: exchange {name!r} cannot name a partition directory")
    values = nanos.to_numpy()
    first_day, last_day = int(values.min()) // NS_PER_DAY, int(values.max()) // NS_PER_DAY
    if len(names) == 1 and first_day == last_day:
        return [Piece(table, names[0], _date(first_day), batch)]
    days = values // NS_PER_DAY
    codes = pc.index_in(exchange, pa.array(names, pa.string())).to_numpy()
    keys = codes.astype(np.int64) * (last_day - first_day + 1) + (days - first_day)
    pieces = []
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        code, day = divmod(int(key), last_day - first_day + 1)
        pieces.append(Piece(table, names[code], _date(first_day + day), batch.take(pa.array(rows))))
    return pieces


def _date(day: int) -> str:
    return str(np.datetime64(day, "D"))
