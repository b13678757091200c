"""notebooks/control.ipynb, run headless against a real capture of the simulator.

The capture (`python -m jobs.capture`, as `ray job submit` runs it) joins a Ray head of the test's own
(tests/cluster/private_ray.py: own temp dir and ports) by its explicit address, in its own namespace; the
notebook's kernel attaches by that same address and namespace. Nothing touches the test session's Ray, and
`attach(address="auto")`, which may pick any Ray found on the machine, is never used here.

The simulator serves 4 symbols of each of the 4 venues; the capture subscribes 3 okx and 2 binance symbols.
The notebook subscribes okx's 4th symbol and a whole venue (deribit) at run time, samples and plots rows/s
and p99 latency, unsubscribes the symbol, stops the capture, reads the rows of the symbol and of deribit back
from the Parquet it wrote and plots a deribit book's mid price and spread.

The notebook is committed with its outputs (its plots as PNG) so that a reader sees them without running it;
`python -m tests.cluster.test_notebook --write` runs the same capture and notebook and writes the executed
notebook back to notebooks/control.ipynb.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_written

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "control.ipynb"
NAMESPACE = "xtrader-notebook-test"
STREAM, SYMBOL = "okx", "BNB-USDT"  # the simulator's 4th okx symbol
VENUE, VENUE_SYMBOLS = "deribit", ("BTC-PERPETUAL", "ETH-PERPETUAL")  # a venue the config does not stream
SUMMARY = "xtrader-summary: "
#: the capture's --duration: far beyond what the test needs (the notebook stops it)
CAPTURE_LIMIT_S = 1200
#: how long the notebook samples rows/s and latency: in the test, and for the committed outputs
TEST_SAMPLE_S, WRITE_SAMPLE_S = 8.0, 30.0
#: the most `ray start --head` may take (minutes on a busy 2-core machine)
HEAD_START_S = 240.0
#: the cells that plot (their ids in the notebook)
PLOT_CELLS = ("watch-plot", "book-plot")

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


def capture_config(root: Path, address: str) -> dict[str, Any]:
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


@dataclass
class Run:
    """One execution of the notebook against a capture: the executed notebook and the capture's end."""

    notebook: Any  # nbformat.NotebookNode
    returncode: int
    stdout: str
    stderr: str
    attached_s: float
    ran_s: float
    leftovers: list[Any]  # processes of the private Ray head still running after its stop


def start_head(attempts: int = 3) -> Any:
    """A started PrivateHead. On a busy machine `ray start` can give up on its own raylet (Ray waits 30 s for
    it to register, not configurable): a new head is tried then."""
    from tests.cluster.private_ray import PrivateHead

    for attempt in range(1, attempts + 1):
        head = PrivateHead(num_cpus=4)
        try:
            head.start(timeout_s=HEAD_START_S)
            return head
        except RuntimeError as exc:
            if attempt == attempts or "timed out during startup" not in str(exc):
                raise
            print(f"ray start gave up (attempt {attempt} of {attempts}), trying a new head", file=sys.stderr)
            head.stop()
    raise AssertionError("unreachable")


def run_notebook(workdir: Path, sample_s: float) -> Run:
    """Start a capture of the simulator on a private Ray head, execute the notebook (outputs cleared first)
    against it, and wait for the capture to end. Raises nbclient's CellExecutionError on a cell error."""
    import nbclient
    import nbformat

    started = time.monotonic()
    data = workdir / "data"
    head = start_head()
    capture = None
    try:
        env = head.env()
        config = workdir / "capture.yaml"
        config.write_text(yaml.safe_dump(capture_config(data, head.address)), encoding="utf-8")
        # the notebook stops the capture; --duration only bounds a run that went wrong
        command = [sys.executable, "-m", "jobs.capture", "--config", str(config), "--duration", str(CAPTURE_LIMIT_S)]
        capture = subprocess.Popen(
            [*command, "--summary-json", str(workdir / "summary.json")],
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
        for cell in notebook.cells:  # what the test checks is what this run showed, never committed outputs
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        kernel_env = env | {
            "XTRADER_RAY_ADDRESS": head.address,
            "XTRADER_NAMESPACE": NAMESPACE,
            "XTRADER_DATA": str(data),
            "XTRADER_STREAM": STREAM,
            "XTRADER_SYMBOL": SYMBOL,
            "XTRADER_VENUE": VENUE,
            "XTRADER_VENUE_SYMBOLS": ",".join(VENUE_SYMBOLS),
            "XTRADER_WATCH_S": str(UNTIL_TIMEOUT_S),
            "XTRADER_SAMPLE_S": str(sample_s),
            "XTRADER_CALL_TIMEOUT_S": str(UNTIL_TIMEOUT_S),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        }
        client = nbclient.NotebookClient(
            notebook,
            timeout=UNTIL_TIMEOUT_S + 60,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(workdir)}},
        )
        try:
            client.execute(env=kernel_env)
        finally:
            nbformat.write(notebook, workdir / "control.executed.ipynb")  # to look at when it fails
        ran = time.monotonic() - started

        stdout, stderr = capture.communicate(timeout=UNTIL_TIMEOUT_S)
    finally:
        if capture is not None and capture.poll() is None:
            capture.kill()
            capture.communicate()
        head.stop()
    return Run(notebook, capture.returncode, stdout, stderr, attached, ran, head.processes())


def test_notebook_controls_a_running_capture(tmp_path: Path) -> None:
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")

    run = run_notebook(tmp_path, TEST_SAMPLE_S)
    check(run)
    print(f"notebook: controller up after {run.attached_s:.1f} s, notebook done after {run.ran_s:.1f} s")


def check(run: Run) -> None:
    """What a user of the notebook cares about, in what it showed, and the capture's summary."""
    notebook = run.notebook
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    text = {cell.id: _text(cell) for cell in notebook.cells if cell.cell_type == "code"}
    assert "attached to the capture" in text["attach"]
    # the streams table lists both streams and their symbols
    assert all(name in text["streams"] for name in ("okx", "BTC-USDT", "binance", "ETHUSDT"))
    # the new symbol was subscribed at run time, on the stream's connection, and went live
    assert f"{SYMBOL} subscribed on {STREAM}/c0/r0" in text["subscribe"]
    assert _states(text["subscribe"], SYMBOL) == ["live"] * 3, text["subscribe"]
    # the venue was added at run time: a connector of its own, every (table, symbol) live
    assert f"{VENUE} subscribed on {VENUE}/c0/r0" in text["venue"]
    assert all(_states(text["venue"], symbol) == ["live"] * 3 for symbol in VENUE_SYMBOLS), text["venue"]
    # rows/s was sampled while it ran, the added venue's included, and plotted
    rates = json.loads(text["watch-sample"].split("rows/s now: ", 1)[1].splitlines()[0].replace("'", '"'))
    assert {"okx", "binance", VENUE} <= set(rates) and rates[VENUE] > 0, rates
    for cell in (c for c in notebook.cells if c.id in PLOT_CELLS):
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, (cell.id, cell.outputs)
    # the stats tables: a row per connector with its counters, the rows each sink took per table and exchange
    stats = text["stats"]
    assert f"{STREAM}/c0/r0" in stats and "binance/c0/r0" in stats and f"{VENUE}/c0/r0" in stats
    assert all(f"{table} " in stats for table in ("trades", "l2", "bbo", "book_snapshots")), stats
    # the symbol was unsubscribed: its streams stopped
    assert f"{SYMBOL} unsubscribed from {STREAM}/c0/r0" in text["unsubscribe"]
    assert _states(text["unsubscribe"], SYMBOL) == ["stopped"] * 3, text["unsubscribe"]
    assert "capture stopped: every sink flushed" in text["stop"]
    # the rows of the symbol and of the added venue were read back from Parquet, every table
    for name in (SYMBOL, VENUE):
        found = json.loads(text["read"].split(f"{name} rows: ", 1)[1].splitlines()[0].replace("'", '"'))
        assert set(found) == {"trades", "l2", "bbo"} and all(n > 0 for n in found.values()), (name, found)
    quotes = int(text["book-plot"].split(f"{VENUE} {VENUE_SYMBOLS[0]}: ", 1)[1].split()[0])
    assert quotes > 0
    assert VENUE in text["duckdb"] and SYMBOL in text["duckdb"]

    # the capture stopped cleanly (asked by the notebook, long before --duration) and lost nothing,
    # the streams added at run time included
    lines = [line for line in run.stdout.splitlines() if line.startswith(SUMMARY)]
    assert len(lines) == 1, run.stdout[-3000:]
    summary = json.loads(lines[0].removeprefix(SUMMARY))
    assert summary["duration_s"] < CAPTURE_LIMIT_S - 60
    assert all(VENUE in summary["tables"][table] for table in ("trades", "l2", "bbo")), summary["tables"]
    assert_written(summary)
    assert not run.leftovers, "processes of the test's Ray head still running"


def test_committed_notebook_shows_its_outputs() -> None:
    """The committed notebook carries the outputs of a full run (refresh with `--write` after editing it)."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "not run top to bottom"
    assert not [cell.id for cell in code if any(o.output_type == "error" for o in cell.outputs)]
    plots = {cell.id: [o for o in cell.outputs if "image/png" in o.get("data", {})] for cell in code}
    assert all(len(plots[name]) == 1 for name in PLOT_CELLS), {name: len(plots[name]) for name in PLOT_CELLS}
    assert all("execution" not in cell.metadata for cell in code)  # no timestamps in the diff


def _text(cell: Any) -> str:
    """Everything a code cell showed: stream text and plain-text results."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _states(table: str, symbol: str) -> list[str]:
    """The `state` column of the rows of `symbol` in a DataFrame's plain text (venue, table, symbol, ...)."""
    states = []
    for line in table.splitlines():
        words = line.split()
        at = words.index(symbol) if symbol in words else -1
        if 0 <= at < len(words) - 2 and "/c" in words[at + 1]:  # symbol, connection, state
            states.append(words[at + 2])
    return states


def strip(notebook: Any) -> Any:
    """The executed notebook without what changes from run to run but the outputs: timings, kernel versions."""
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":  # Ray's own log lines (times, addresses) are not the notebook's output
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    return notebook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the executed notebook to " + str(NOTEBOOK))
    parser.add_argument("--sample-s", type=float, default=WRITE_SAMPLE_S, help="seconds of rows/s to sample")
    args = parser.parse_args()
    import nbformat

    workdir = Path(tempfile.mkdtemp(prefix="xtrader-notebook-"))
    print(f"running the capture and the notebook in {workdir} (kept there if anything fails)")
    run = run_notebook(workdir, args.sample_s)
    check(run)  # the outputs written show what the test checks
    target = NOTEBOOK if args.write else Path("control.executed.ipynb")
    nbformat.write(strip(run.notebook), target)
    shutil.rmtree(workdir)
    print(f"wrote {target} ({target.stat().st_size} bytes) in {run.ran_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
