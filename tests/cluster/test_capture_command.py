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
