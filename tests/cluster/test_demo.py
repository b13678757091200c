"""`xtrader demo` as a user runs it: its own local Ray, a summary with written == sent.

It runs until every table of every venue has rows and every book is valid (`--min-rows`,
`--until-books-valid`), with `--duration` as a generous upper bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_until_met, assert_written


def rows_on_disk(root: Path, table: str) -> dict[str, int]:
    """Rows per venue in the Parquet dataset of `table`, as a user counts them."""
    import pyarrow.dataset as ds

    exchange = ds.dataset(root / table, format="parquet", partitioning="hive").to_table(columns=["exchange"])
    return {c["values"]: c["counts"] for c in exchange.column("exchange").cast("string").value_counts().to_pylist()}


#: every line `xtrader demo` writes on stdout when it is not a terminal (no live view, no summary table)
PLAIN_LINES = (
    "xtrader demo: simulator (",
    "xtrader-summary: {",
    "xtrader-metrics: {",  # the progress line, every metrics.log_interval_s
    "xtrader demo: written == sent + rest for every table: ",
    "query the trades:",
    "  python -c ",
)


def assert_plain_lines_only(stdout: str) -> None:
    """Without a terminal: the plain lines only, no rich table (box drawing) and no escape sequence."""
    assert "\x1b" not in stdout, stdout[-3000:]
    assert not set(stdout) & set("│┃━─┏└"), stdout[-3000:]
    others = [line for line in stdout.splitlines() if not line.startswith(PLAIN_LINES)]
    assert others == [], stdout[-3000:]


def test_demo_writes_everything_the_simulator_sent(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xtrader.cli",
            "demo",
            "--min-rows",
            str(MIN_ROWS),
            "--until-books-valid",
            "--duration",
            str(UNTIL_TIMEOUT_S),
            "--out",
            str(tmp_path / "data"),
            "--summary-json",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        timeout=UNTIL_TIMEOUT_S + 180,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_plain_lines_only(done.stdout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("xtrader-summary: ")]
    assert len(lines) == 1
    summary = json.loads(lines[0].removeprefix("xtrader-summary: "))
    assert summary == json.loads(summary_path.read_text())
    assert set(summary) == {
        "duration_s",
        "tables",
        "events",
        "books",
        "latency_ms",
        "throughput_msgs_per_s",
        "unknown_symbols",
        "sinks",
        "shutdown",
        "chaos",
        "until",
    }
    assert_until_met(summary)
    assert summary["shutdown"] == {"unacked_rows": 0, "sinks_not_closed": [], "closes_unconfirmed": 0}
    assert set(summary["chaos"].values()) == {0}  # no --chaos
    assert_written(summary)
    assert summary["sinks"]["questdb"] is None
    assert 0 < summary["sinks"]["parquet"]["flush_ms"]["p50"] <= summary["sinks"]["parquet"]["flush_ms"]["p99"]
    for table, venues in summary["tables"].items():
        on_disk = rows_on_disk(tmp_path / "data", table)
        for venue, entry in venues.items():
            assert on_disk.get(venue, 0) == entry["written"]["parquet"], (table, venue, on_disk, entry)
            assert entry["written"]["questdb"] is None
            assert set(entry) == {"sent", "rest", "written", "accounted"}
            assert entry["accounted"] == {"parquet": 0, "questdb": None}  # nothing lost
    assert summary["tables"]["l2"]["binance"]["rest"] > 0  # the REST snapshots Binance books start from
    assert summary["books"]["matched"] == summary["books"]["checked"] > 0
    query = done.stdout.split("query the trades:\n", 1)[1].strip()
    shown = subprocess.run(
        query,
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "price_count" in shown.stdout
