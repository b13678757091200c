"""`xtrader demo --venue-option okx.initial_snapshot=0`: OKX books built from the REST book, on a local Ray.

The simulator sends OKX book updates without the initial snapshot (OKX changelog, 12 Feb 2026); every
OKX book must still end equal to the simulator's, and the REST rows are counted in the summary's `rest`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds


def test_demo_builds_okx_books_from_the_rest_book(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    out = tmp_path / "data"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xtrader.cli",
            "demo",
            "--duration",
            "20",
            "--out",
            str(out),
            "--summary-json",
            str(summary_path),
            "--venue-option",
            "okx.initial_snapshot=0",
        ],
        capture_output=True,
        text=True,
        timeout=360,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "books not matching the simulator" not in done.stderr, done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    okx = summary["tables"]["l2"]["okx"]
    assert okx["sent"] > 0  # OKX l2 went on the wire, so its books were compared
    assert summary["books"]["matched"] == summary["books"]["checked"] > 0

    l2 = ds.dataset(out / "l2", partitioning="hive", format="parquet").to_table(
        columns=["exchange", "symbol", "is_snapshot"]
    )
    okx_l2 = l2.filter(pc.equal(l2["exchange"].cast("string"), "okx"))
    snapshot_rows = okx_l2.filter(okx_l2["is_snapshot"])
    # no websocket snapshot was sent: every OKX snapshot row came from GET /api/v5/market/books
    assert snapshot_rows.num_rows > 0
    assert okx["rest"] == snapshot_rows.num_rows
    assert okx["written"]["parquet"] == okx["sent"] + okx["rest"] == okx_l2.num_rows
    symbols = set(snapshot_rows["symbol"].cast("string").to_pylist())
    assert len(symbols) == 3  # every OKX book of the demo (3 symbols per venue) started from REST

    events = ds.dataset(out / "events", partitioning="hive", format="parquet").to_table()
    okx_events = events.filter(pc.equal(events["exchange"].cast("string"), "okx")).to_pylist()
    waited = {e["symbol"] for e in okx_events if "no websocket snapshot" in (e["detail"] or "")}
    assert waited == symbols
