"""notebooks/control.ipynb, run headless against a real capture of the simulator.

The capture (`python -m jobs.capture`, as `ray job submit` runs it) joins a Ray head of the test's own
(tests/cluster/private_ray.py: own temp dir and ports) by its explicit address, in its own namespace; the
notebook's kernel attaches by that same address and namespace. Nothing touches the test session's Ray, and
`attach(address="auto")`, which may pick any Ray found on the machine, is never used here.

The simulator serves 4 symbols per venue, the capture subscribes 3; the notebook subscribes the 4th at run
time, shows stats, stops the capture and reads the 4th symbol's rows back from the Parquet it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_written

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "control.ipynb"
NAMESPACE = "xtrader-notebook-test"
STREAM, SYMBOL = "okx", "BNB-USDT"  # the simulator's 4th okx symbol
SUMMARY = "xtrader-summary: "
#: the capture's --duration: far beyond what the test needs (the notebook stops it)
CAPTURE_LIMIT_S = 1200

#: waits until the capture's controller answers and every sink holds rows of every (table, venue) in argv[4]
WAIT_FOR_ROWS = """
import json, sys, time
from xtrader.control import attach
deadline = time.monotonic() + float(sys.argv[3])
wanted = json.loads(sys.argv[4])
missing = ["no controller"]
while time.monotonic() < deadline:
    try:
        stats = attach(address=sys.argv[1], namespace=sys.argv[2]).actor_stats()
    except LookupError:
        time.sleep(0.5)
        continue
    sinks = [s for name, s in stats.items() if name.startswith("sink/")]
    missing = [
        f"{table}/{venue}" for table, venue in wanted
        if not sinks or any(s.get("rows", {}).get(table, {}).get(venue, 0) < int(sys.argv[5]) for s in sinks)
    ]
    if not missing:
        sys.exit(0)
    time.sleep(0.5)
sys.exit(f"the capture has no rows of {missing} after {sys.argv[3]} s")
"""


def capture_config(root: Path, address: str) -> dict[str, object]:
    return {
        "name": "notebook",
        "simulator": {"enabled": True, "symbols": 4, "rate": 100, "seed": 2},
        "streams": [
            {"venue": "okx", "tables": ["trades", "l2", "bbo"], "symbols": ["BTC-USDT", "ETH-USDT", "SOL-USDT"]},
            {"venue": "binance", "tables": ["trades", "l2", "bbo"], "symbols": ["BTCUSDT", "ETHUSDT"]},
        ],
        "pipeline": {"connector_cpus": 0.25},
        "sinks": {"parquet": {"root": str(root)}},
        "cluster": {"address": address, "namespace": NAMESPACE, "placement_timeout_s": 60},
        "metrics": {"port": 0, "live_table": False},
    }


def test_notebook_controls_a_running_capture(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from tests.cluster.private_ray import PrivateHead

    started = time.monotonic()
    data = tmp_path / "data"
    head = PrivateHead(num_cpus=4)
    head.start()
    capture = None
    try:
        env = head.env()
        config = tmp_path / "capture.yaml"
        config.write_text(yaml.safe_dump(capture_config(data, head.address)), encoding="utf-8")
        summary_path = tmp_path / "summary.json"
        # the notebook stops the capture; --duration only bounds a test that went wrong
        command = [sys.executable, "-m", "jobs.capture", "--config", str(config), "--duration", str(CAPTURE_LIMIT_S)]
        capture = subprocess.Popen(
            [*command, "--summary-json", str(summary_path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # every table of every venue has rows before the notebook runs (and stops the capture)
        wanted = json.dumps(
            [[t, s["venue"]] for s in capture_config(data, head.address)["streams"] for t in s["tables"]]
        )
        subprocess.run(
            [sys.executable, "-c", WAIT_FOR_ROWS, head.address, NAMESPACE, str(UNTIL_TIMEOUT_S), wanted, str(MIN_ROWS)],
            cwd=REPO,
            env=env,
            check=True,
            timeout=UNTIL_TIMEOUT_S + 60,
        )
        attached = time.monotonic() - started

        notebook = nbformat.read(NOTEBOOK, as_version=4)
        kernel_env = env | {
            "XTRADER_RAY_ADDRESS": head.address,
            "XTRADER_NAMESPACE": NAMESPACE,
            "XTRADER_DATA": str(data),
            "XTRADER_STREAM": STREAM,
            "XTRADER_SYMBOL": SYMBOL,
            "XTRADER_WATCH_S": str(UNTIL_TIMEOUT_S),
        }
        client = nbclient.NotebookClient(
            notebook,
            timeout=UNTIL_TIMEOUT_S + 60,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        try:
            client.execute(env=kernel_env)
        finally:
            nbformat.write(notebook, tmp_path / "control.executed.ipynb")  # to look at when it fails
        ran = time.monotonic() - started

        stdout, stderr = capture.communicate(timeout=UNTIL_TIMEOUT_S)
    finally:
        if capture is not None and capture.poll() is None:
            capture.kill()
            capture.communicate()
        head.stop()
    assert capture.returncode == 0, stdout[-3000:] + stderr[-5000:]

    text = {index: _text(cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    everything = "\n".join(text.values())
    assert "attached to the capture" in everything
    # the streams table lists both streams and their symbols
    streams = next(t for t in text.values() if "BTC-USDT" in t and "binance" in t)
    assert "okx" in streams and "ETHUSDT" in streams
    # the new symbol was subscribed at run time, on the stream's connection, and shows in the stream
    assert f"{SYMBOL} subscribed on {STREAM}/c0/r0" in everything
    # the stats tables: a row per connector with its counters, the rows each sink took per table and exchange
    stats = next(t for t in text.values() if "messages" in t and "sink/parquet" in t)
    assert f"{STREAM}/c0/r0" in stats and "binance/c0/r0" in stats
    assert all(f"{table} " in stats for table in ("trades", "l2", "bbo", "book_snapshots")), stats
    assert "capture stopped: every sink flushed" in everything
    # rows of the new symbol were read back
    counts = next(t for t in text.values() if f"{SYMBOL} rows:" in t)
    found = json.loads(counts.split(f"{SYMBOL} rows: ", 1)[1].splitlines()[0].replace("'", '"'))
    assert found["l2"] > 0 and found["bbo"] > 0, found
    assert sum(found.values()) > 0
    duck = next(t for t in text.values() if "table" in t and "rows" in t and "UNION" not in t and SYMBOL in t)
    assert "bbo" in duck

    # the capture stopped cleanly (asked by the notebook, long before --duration) and lost nothing
    lines = [line for line in stdout.splitlines() if line.startswith(SUMMARY)]
    assert len(lines) == 1, stdout[-3000:]
    summary = json.loads(lines[0].removeprefix(SUMMARY))
    assert summary["duration_s"] < CAPTURE_LIMIT_S - 60
    assert_written(summary)
    assert not head.processes(), "processes of the test's Ray head still running"
    print(f"notebook: controller up after {attached:.1f} s, notebook done after {ran:.1f} s")


def _text(cell: object) -> str:
    """Everything a code cell showed: stream text and plain-text results."""
    parts = []
    for output in getattr(cell, "outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)
