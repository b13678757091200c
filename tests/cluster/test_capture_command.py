"""`python -m jobs.capture --config FILE` (the `ray job submit` entrypoint) as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_until_met, assert_written


def test_capture_entrypoint_runs_a_config_file(tmp_path: Path) -> None:
    config = {
        "name": "entrypoint",
        "simulator": {"enabled": True, "symbols": 2, "rate": 50},
        "streams": [
            {"venue": "binance", "tables": ["trades", "l2", "bbo"], "symbols": ["BTCUSDT", "ETHUSDT", "NOPEUSDT"]}
        ],
        "sinks": {"parquet": {"root": str(tmp_path / "data")}},
        "metrics": {"port": 0},
    }
    path = tmp_path / "capture.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.capture",
            "--config",
            str(path),
            "--min-rows",
            str(MIN_ROWS),
            "--until-books-valid",
            "--duration",
            str(UNTIL_TIMEOUT_S),
            "--summary-json",
            str(tmp_path / "summary.json"),
        ],
        capture_output=True,
        text=True,
        timeout=UNTIL_TIMEOUT_S + 180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["unknown_symbols"] == ["binance:NOPEUSDT"]
    assert "NOPEUSDT" in done.stderr
    assert_until_met(summary)
    assert_written(summary)


def test_an_invalid_config_names_the_field_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"streams": [{"venue": "binance", "symbols": ["BTCUSDT"], "colour": 1}]}))
    done = subprocess.run(
        [sys.executable, "-m", "jobs.capture", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "colour" in done.stderr


def rows_served(url: str) -> float:
    """The sum of xtrader_rows_total on a capture's /metrics endpoint (0 while it has none)."""
    import httpx

    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("xtrader_rows_total{"))


def test_sigterm_drains_flushes_and_closes_everything_before_exit(tmp_path: Path) -> None:
    """Issue 10: SIGTERM to a running capture: every actor drained, every sink closed, the summary printed,
    nothing lost (written == sent + rest for every table and venue, and those rows on disk)."""
    import re
    import signal
    import threading
    import time

    from tests.cluster.test_pipeline import assert_complete

    config = {
        "name": "sigterm",
        "simulator": {"enabled": True, "symbols": 2, "rate": 50},
        "streams": [{"venue": "binance", "tables": ["trades", "l2", "bbo"], "symbols": ["BTCUSDT", "ETHUSDT"]}],
        "sinks": {"parquet": {"root": str(tmp_path / "data")}},
        "metrics": {"port": 0, "interval_s": 0.5},
    }
    path = tmp_path / "capture.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "jobs.capture", "--config", str(path), "--duration", str(UNTIL_TIMEOUT_S)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + UNTIL_TIMEOUT_S
        url = None
        while time.monotonic() < deadline and process.poll() is None:
            found = [m.group(1) for line in list(stderr) if (m := re.search(r"metrics on (\S+)", line))]
            if found and rows_served(found[0]) >= MIN_ROWS:
                url = found[0]
                break
            time.sleep(0.5)
        assert url is not None, f"no rows served within {UNTIL_TIMEOUT_S} s: {''.join(stderr)[-3000:]}"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    assert process.returncode == 0, "".join(stderr)[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("xtrader-summary: ")]
    assert lines, out[-2000:]
    summary = json.loads(lines[-1].removeprefix("xtrader-summary: "))
    assert summary["duration_s"] < UNTIL_TIMEOUT_S  # stopped by the signal, not the time limit
    assert summary["shutdown"] == {"unacked_rows": 0, "sinks_not_closed": [], "closes_unconfirmed": 0}
    assert_complete(summary, tmp_path / "data")  # written == sent + rest, those rows on disk once, books true
