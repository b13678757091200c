"""Restarts that can actually happen: no actor with `max_restarts` gets its constructor arguments from the
object store (issue 10, "Restarts that can actually happen").

Ray restarts an actor by running its creation task again, with the same arguments. An argument that
sits in the object store (an ObjectRef, a value over Ray's inline size) or that holds a reference
(an actor handle of a non-detached actor is one) is not kept for that: once its owner lets it go the
restart fails, and Ray says so at every capture start ("... has constructor arguments in the object
store and max_restarts > 0 ..."). Every actor gets plain values instead (specs, ids, actor names) and
looks its peers up by name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

RAY_WARNING = "has constructor arguments in the object store"


def test_a_capture_start_creates_no_actor_whose_restart_can_fail(tmp_path: Path) -> None:
    # every kind of actor: sinks, a book per venue, an arbiter (redundancy 2), connectors
    config = {
        "name": "restart-args",
        "simulator": {"enabled": True, "symbols": 1, "rate": 20},
        "streams": [
            {"venue": "binance", "tables": ["trades", "l2", "bbo"], "symbols": ["BTCUSDT"], "redundancy": 2},
        ],
        "pipeline": {"connector_cpus": 0.5, "validate_symbols": False},
        "sinks": {"parquet": {"root": str(tmp_path / "data")}},
        "metrics": {"port": 0},
    }
    path = tmp_path / "capture.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "jobs.capture", "--config", str(path), "--duration", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "xtrader-summary: " in done.stdout  # the capture really started every actor and stopped
    warnings = [line for line in done.stderr.splitlines() if RAY_WARNING in line]
    assert not warnings, warnings
