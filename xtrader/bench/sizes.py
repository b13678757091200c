"""Ray-free figures of `benchmarks/scale.py`: bytes per row on disk (Parquet) and on the wire (ILP), and the
nodes a fleet needs.

- `parquet_bytes`: the sizes of a Parquet root's files over the rows their footers hold, per table;
- `ilp_bytes`: the same rows encoded as the QuestDB sink encodes them (`xtrader.sinks.ilp.encode`, into the
  `questdb` client's Buffer; nothing is sent), bytes of the buffer per row;
- `nodes`: instruments x venues -> nodes, from a measured messages-per-CPU-second figure and stated assumptions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def parquet_bytes(root: str | Path, tables: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per table: files, bytes (on disk), rows (from the footers) and bytes_per_row (None: no rows)."""
    import pyarrow.parquet as pq

    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        files = sorted((Path(root) / table).rglob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        out[table] = {"files": len(files), "bytes": size, "rows": rows, "bytes_per_row": _per(size, rows)}
    return out


def ilp_bytes(
    root: str | Path, tables: tuple[str, ...], protocol_version: int = 2, max_rows: int = 200_000
) -> dict[str, dict[str, Any]]:
    """Per table: the first `max_rows` rows of the Parquet root encoded as ILP (the sink's encoder, in batches of
    the files' row groups): rows, bytes, bytes_per_row (None: no rows)."""
    import pyarrow.dataset as ds

    from xtrader.sinks import ilp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from questdb.ingress import Buffer

    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        rows = size = 0
        if (Path(root) / table).exists():
            # the hive partition columns (exchange, date) are not in the files: the stored schema has them
            dataset = ds.dataset(Path(root) / table, format="parquet", partitioning="hive")
            for read in dataset.to_batches():
                if rows >= max_rows:
                    break
                batch = read.slice(0, max_rows - rows)
                buffer = Buffer(protocol_version=protocol_version)
                ilp.encode(buffer, table, table, _stored(batch, table))
                rows += batch.num_rows
                size += len(buffer)
        out[table] = {"rows": rows, "bytes": size, "bytes_per_row": _per(size, rows)}
    return out


def _stored(batch: Any, table: str) -> Any:
    """`batch` (read back, partition columns as read) in the stored table's schema, as the sink gets it."""
    import pyarrow as pa

    from xtrader import schema

    wanted = schema.TABLES[table]
    columns = [batch.column(f.name).cast(f.type) for f in wanted]
    return pa.RecordBatch.from_arrays(columns, schema=wanted)


def _per(size: int, rows: int) -> float | None:
    return round(size / rows, 1) if rows else None


@dataclass(frozen=True)
class Sizing:
    """Assumptions of a sizing: what each instrument sends and how much of a node the capture may use."""

    msgs_per_cpu_s: float  # measured: messages per CPU-second of all the pipeline's actors
    msgs_per_instrument_s: float = 20.0  # l2 diffs (depth@100ms: 10/s) + trades, a busy perpetual's average
    burst: float = 5.0  # peak / average the fleet must absorb without falling behind
    cores_per_node: int = 8
    utilisation: float = 0.7  # share of a node's cores the capture may use at peak

    def __post_init__(self) -> None:
        for name in ("msgs_per_cpu_s", "msgs_per_instrument_s", "burst", "utilisation"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.cores_per_node < 1 or self.utilisation > 1:
            raise ValueError(f"cores_per_node >= 1 and utilisation <= 1, got {self.cores_per_node}, {self.utilisation}")

    def cpus(self, instruments: int, venues: int) -> float:
        """CPU cores the peak rate of `instruments` on each of `venues` needs."""
        return instruments * venues * self.msgs_per_instrument_s * self.burst / self.msgs_per_cpu_s

    def nodes(self, instruments: int, venues: int) -> int:
        """Nodes for `instruments` on each of `venues`: at least one, and one per `cores_per_node * utilisation`."""
        return max(1, math.ceil(self.cpus(instruments, venues) / (self.cores_per_node * self.utilisation)))

    def table(self, instruments: tuple[int, ...], venues: tuple[int, ...]) -> str:
        """A Markdown table: rows instruments per venue, columns venues, cells nodes (CPU cores at peak)."""
        head = "| instruments per venue | " + " | ".join(f"{v} venue{'s' if v > 1 else ''}" for v in venues) + " |"
        lines = [head, "|---:|" + "---:|" * len(venues)]
        for n in instruments:
            cells = [f"{self.nodes(n, v)} ({self.cpus(n, v):.1f} cores)" for v in venues]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
