"""`xtrader demo` in a terminal, as a person runs it: the live view while it runs, a readable summary table at the
end, and still the `xtrader-summary:` JSON line for scripts.

The demo runs under a pseudo-terminal (its stdout is a tty of 50 x 200); it stops as soon as every table of every
venue has a few rows and every book is valid, `--duration` being a generous upper bound.
(Without a terminal, only the plain lines appear: tests/cluster/test_demo.py.)
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.cluster.conftest import UNTIL_TIMEOUT_S, assert_until_met, assert_written

ROOT = Path(__file__).resolve().parents[2]
#: an escape sequence (colours, cursor moves, hide/show cursor)
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]")
ROWS, COLUMNS = 50, 200


def run_in_terminal(argv: list[str], timeout_s: float, stderr_path: Path) -> tuple[int, str]:
    """Run `argv` with its stdout on a pseudo-terminal of ROWS x COLUMNS; its exit status and everything it
    wrote there (read as it comes, so the child never blocks on a full terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"}
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "RAY_ADDRESS"):
        env.pop(name, None)
    out = bytearray()
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=stderr, env=env, cwd=ROOT)
    os.close(slave)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    chunk = b""
                if chunk:
                    out += chunk
                    continue
                break
            if proc.poll() is not None and not select.select([master], [], [], 0)[0]:
                break
        else:
            raise AssertionError(f"still running after {timeout_s} s:\n" + out.decode(errors="replace")[-3000:])
        return proc.wait(timeout=60), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def plain(output: str) -> str:
    """The terminal's text without escape sequences and carriage returns."""
    return ANSI.sub("", output).replace("\r", "")


def line_of(text: str, *parts: str) -> str:
    return next(line for line in text.splitlines() if all(p in line for p in parts))


def test_demo_in_a_terminal_shows_the_live_view_while_running_then_a_summary_table(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.txt"
    argv = [sys.executable, "-m", "xtrader.cli", "demo", "--symbols", "2", "--min-rows", "5", "--until-books-valid"]
    argv += ["--duration", str(UNTIL_TIMEOUT_S), "--out", str(tmp_path / "data")]
    status, output = run_in_terminal(argv, UNTIL_TIMEOUT_S + 180, stderr)
    text = plain(output)
    assert status == 0, text[-4000:] + stderr.read_text()[-3000:]
    assert "\x1b[" in output  # a terminal's view: colours and cursor moves

    # while it ran: the live view, before the summary
    starting = text.index("xtrader capture: starting ...")
    live = text.index("xtrader capture - ", starting)  # the live view's title: elapsed s, msg/s
    final = text.index("xtrader summary - ")
    assert starting < live < final
    view = text[live:final]
    for column in ("connection", "state", "rows/s", "age s", "gaps", "resyncs", "reconnects", "p99 ms", "node"):
        assert column in view, view
    assert re.search(r"sink rows: parquet [1-9][\d,]* \(", text[starting:final])  # rows arrived while it ran
    assert re.search(r"\d+ streams \(", view), view  # the totals line
    assert "events in the last 60 s" in view
    for venue in ("binance/c0/r0", "okx/c0/r0", "deribit/c0/r0", "binance_futures/c0/r0"):
        assert venue in view, view

    # the end: the JSON line scripts read, and the table people read, which agree
    summaries = [line for line in text.splitlines() if line.startswith("xtrader-summary: ")]
    assert len(summaries) == 1, text[-4000:]
    summary = json.loads(summaries[0].removeprefix("xtrader-summary: "))
    assert_until_met(summary)
    assert_written(summary)
    table = text[final:]
    for name, venues in summary["tables"].items():
        for venue, entry in venues.items():
            row = line_of(table, f" {name} ", f" {venue} ")
            cells = [c.strip() for c in row.split("│")][1:-1]
            assert cells == [
                name,
                venue,
                f"{entry['sent']:,}",
                f"{entry['rest']:,}",
                f"{entry['written']['parquet']:,}",
                f"{entry['accounted']['parquet']:,}",  # rows lost and recorded as such (0 here)
                "yes",
            ]
    books = summary["books"]
    assert f"{books['matched']:,} of {books['checked']:,} match the simulator: yes" in line_of(table, "books")
    assert "latency ms" in table and "throughput" in table
    assert "xtrader demo: written == sent + rest for every table: yes" in text
