"""``python -m xtrader.simulator``: one JSON line with the URLs, serves until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from xtrader.simulator.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_cli_announces_urls_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xtrader.simulator",
            "--venues",
            "binance,binance_futures",
            "--symbols",
            "2",
            "--rate",
            "20",
            "--seed",
            "4",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        assert set(info) == {"binance", "binance_futures", "stats", "ca_file", "symbols"}
        assert info["binance"]["ws"].startswith("ws://127.0.0.1:") and info["binance"]["wss"].startswith("wss://")
        assert info["symbols"]["binance"] == ["BTCUSDT", "ETHUSDT"] and Path(info["ca_file"]).exists()
        stats = httpx.get(info["stats"], timeout=5).json()
        assert set(stats["venues"]) == {"binance", "binance_futures"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_rejects_unknown_venue_bad_faults_and_bad_venue_options() -> None:
    assert main(["--venues", "kraken"]) == 2
    assert main(["--venues", "binance", "--faults", "drop_rate=7"]) == 2
    assert main(["--venues", "okx", "--venue-option", "okx.frobnicate=1"]) == 2
    assert main(["--venues", "okx", "--venue-option", "checksum=1"]) == 2
