"""`xtrader status` with no capture to show: a clear message and a non-zero exit, within seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_says_no_capture_is_running_and_exits_non_zero() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "xtrader.cli", "status", "--address", address],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"xtrader status: no capture running: no Ray at {address}" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60  # not Ray's minutes of connection retries
