"""`cryptofeed`: cryptofeed from PyPI on the benchmark feed, in a virtual environment of its own.

The environment (`VENV`, or $XTRADER_BENCH_CRYPTOFEED_VENV) is made on first use with `python -m venv` and
`pip install cryptofeed`; cryptofeed is not an xtrader dependency. `cryptofeed_client.py` runs in it: L2 book
+ trades on the feed's perpetuals over wss, callbacks that only count and record receipt -> callback time.
CPU is that one process's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from xtrader.bench.cpu import CpuMeter
from xtrader.bench.feed import Feed, FeedOptions, streams
from xtrader.bench.limits import wait_sent, wait_subscribed
from xtrader.bench.report import percentiles_ms, rates

VENV = Path(os.environ.get("XTRADER_BENCH_CRYPTOFEED_VENV", Path.home() / ".cache/xtrader-bench/cryptofeed-venv"))
CLIENT = Path(__file__).with_name("cryptofeed_client.py")


def venv_python() -> Path:
    """The venv's interpreter, with cryptofeed importable; made (venv + pip install) when missing."""
    python = VENV / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([python, "-c", "import cryptofeed"], capture_output=True, check=False).returncode == 0
    ):
        return python
    print(f"xtrader bench: installing cryptofeed into {VENV}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "cryptofeed"], check=True)
    return python


def version(python: Path) -> str:
    done = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('cryptofeed'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


class Client:
    """The cryptofeed process on `feed`, spoken to over stdin / stdout (see cryptofeed_client.py)."""

    def __init__(self, python: Path, feed: Feed) -> None:
        env = {**os.environ, "SSL_CERT_FILE": feed.ca_file}
        env.pop("PYTHONPATH", None)
        self.process = subprocess.Popen(
            [str(python), "-P", str(CLIENT), feed.urls["wss"], feed.urls["rest"]],  # -P: not this directory
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.ready = self.answer()

    def answer(self) -> Any:
        out: IO[str] | None = self.process.stdout
        assert out is not None
        line = out.readline()
        if not line:
            raise RuntimeError(f"cryptofeed client exited ({self.process.wait(10)})")
        return json.loads(line)

    def ask(self, command: str) -> Any:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return self.answer()

    def close(self) -> None:
        try:
            stdin = self.process.stdin
            assert stdin is not None
            stdin.write("quit\n")
            stdin.flush()
            self.process.wait(10)
        except Exception:
            self.process.kill()
            self.process.wait(10)


def throughput(python: Path, steps: int, symbols: int) -> dict[str, Any]:
    with Feed(FeedOptions(symbols=symbols, pregenerate=steps)) as feed:
        client = Client(python, feed)
        try:
            wait_subscribed(feed, len(streams(feed.symbols)))
            meter = CpuMeter([client.process.pid])
            meter.start()
            started = time.monotonic()
            feed.resume()
            sent = wait_sent(feed, 600.0)
            done = client.ask(f"target {sent}")["done"]
            cpu = meter.stop()
        finally:
            client.close()
    result = rates(sent, done - started, cpu)
    result["steps_per_frame"] = round(steps / sent, 4) if sent else None
    result["version"] = version(python)
    return result


def latency(
    python: Path, rate: float, steps_per_frame: float, symbols: int, warmup_s: float, seconds: float
) -> dict[str, Any]:
    with Feed(FeedOptions(symbols=symbols, rate=rate * steps_per_frame)) as feed:
        client = Client(python, feed)
        try:
            wait_subscribed(feed, len(streams(feed.symbols)))
            feed.resume()
            time.sleep(warmup_s)
            client.ask("measure")
            sent0, t0 = feed.state()["messages"], time.monotonic()
            time.sleep(seconds)
            report = client.ask("report")
            sent1, t1 = feed.state()["messages"], time.monotonic()
        finally:
            client.close()
    return {
        "rate_msgs_per_s": round((sent1 - sent0) / (t1 - t0), 1),
        "messages": len(report["latencies_s"]),
        **percentiles_ms(report["latencies_s"]),
        "overall": percentiles_ms(report["overall_s"]),
    }
