"""The live control plane end to end: a capture of the simulator on real Ray actors, watched and steered
through `xtrader.control.attach()` and `xtrader status`.

One capture (binance + okx): streams() turns live with rows/s; bad requests are refused with one error
and change nothing; a symbol is added at run time and goes live; `xtrader status` shows the streams;
events() has the connects; a venue no stream captures (deribit) is added and goes live; a stream
needing more CPUs than the cluster has shows `waiting for 8 CPU` and is withdrawn; unsubscribing every
okx symbol stops okx's connector and removes its placement group; the final summary has
written == sent + rest for every stream that ran, deribit's included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jobs.demo import demo_capture
from jobs.run import run
from tests.cluster.conftest import wait_for

pytestmark = pytest.mark.usefixtures("ray_session")

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "xtrader-tests"  # the ray_session fixture's


def rows(streams: pa.Table, **match: str) -> list[dict[str, Any]]:
    return [r for r in streams.to_pylist() if all(r[k] == v for k, v in match.items())]


def test_watch_and_steer_a_running_capture(tmp_path: Path) -> None:
    import ray

    from xtrader.control import attach
    from xtrader.control_requests import RequestError

    data = demo_capture(str(tmp_path / "data"), symbols=3, rate=40.0, venues=("binance", "okx")).model_dump()
    data["streams"][0]["symbols"] = ["BTCUSDT", "ETHUSDT"]  # SOLUSDT (listed by the simulator) comes later
    data["metrics"]["interval_s"] = 1.0
    # placement groups are named "<capture>:<group>": a name of its own per attempt (a rerun must not read an
    # earlier attempt's removed groups as its own)
    data["name"] = name = f"control-{uuid.uuid4().hex[:8]}"
    from xtrader.config import Capture

    capture = Capture.model_validate(data)
    stop = threading.Event()
    result: dict[str, Any] = {}
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            result.update(run(capture, 150.0, stop_event=stop))
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)

    driver = threading.Thread(target=drive)
    driver.start()
    try:

        def attached() -> Any:
            try:
                control = attach(namespace=NAMESPACE)
                return control if "okx/c0/r0" in control.actors() else None
            except LookupError:
                return None

        control = wait_for("the capture's controller", attached, timeout_s=90)

        # every (venue, table, symbol, connection) turns live, with rows/s measured
        def all_live() -> bool:
            table = control.streams()
            states = {(r["venue"], r["table"], r["symbol"]): r["state"] for r in table.to_pylist()}
            return (
                len(states) == 15
                and set(states.values()) == {"live"}
                and all(r["rows_per_s"] is not None for r in table.to_pylist())
            )

        wait_for("every stream live", all_live, timeout_s=90)
        table = control.streams()
        assert table.to_pandas().shape[0] == 15  # binance 3 tables x 2 symbols, okx 3 x 3
        btc = rows(table, venue="binance", table="trades", symbol="BTCUSDT")[0]
        assert btc["connection"] == "binance/c0/r0" and btc["rows"] > 0 and btc["node"]
        assert rows(table, venue="okx", table="l2", symbol="BTC-USDT")[0]["gaps"] == 0

        # bad requests: one error naming what is wrong, nothing changed
        before = control.stream_config()
        with pytest.raises(RequestError, match="binance does not list 'NOPEUSDT'"):
            control.subscribe("binance", ["trades"], ["NOPEUSDT"])
        with pytest.raises(RequestError, match="unknown venue 'kraken'"):
            control.subscribe("kraken", ["trades"], ["BTCUSDT"])
        with pytest.raises(
            RequestError,
            match=r"malformed symbol 'BTC USDT'.*okx has no table 'candles'|"
            r"okx has no table 'candles'.*malformed symbol 'BTC USDT'",
        ):
            control.subscribe("okx", ["candles"], ["BTC USDT"])
        with pytest.raises(RequestError, match="not subscribed on binance: trades SOLUSDT"):
            control.unsubscribe("binance", ["trades"], ["SOLUSDT"])
        assert control.stream_config() == before

        # a listed symbol added at run time goes live on the running connection
        assert control.subscribe("binance", ["trades", "l2", "bbo"], ["SOLUSDT"]) == ["binance/c0/r0"]
        wait_for(
            "SOLUSDT live",
            lambda: {r["state"] for r in rows(control.streams(), symbol="SOLUSDT")} == {"live"},
            timeout_s=90,
        )

        # the terminal view of the same capture, from another process
        address = ray.get_runtime_context().gcs_address
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("RAY_ADDRESS", None)
        status = subprocess.run(
            [sys.executable, "-m", "xtrader.cli", "status", "--address", address, "--namespace", NAMESPACE],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "COLUMNS": "220"},
            cwd=ROOT,
        )
        assert status.returncode == 0, status.stdout[-3000:] + status.stderr[-3000:]
        assert "SOLUSDT" in status.stdout and "okx/c0/r0" in status.stdout and "live" in status.stdout
        assert "18 streams" in status.stdout and "events in the last 60 s" in status.stdout

        events = control.events()
        assert "connect" in set(events.column("kind").cast(pa.string()).to_pylist())
        stats = control.stats()
        assert {"binance/c0/r0", "okx/c0/r0", "sink/parquet", "book/okx"} <= set(stats.column("actor").to_pylist())

        # a venue no stream captures: a new connector in its own placement group (and a book for its l2)
        assert control.subscribe("deribit", ["trades", "l2", "bbo"], ["BTC-PERPETUAL", "ETH-PERPETUAL"]) == [
            "deribit/c0/r0"
        ]
        wait_for(
            "deribit live",
            lambda: [r["state"] for r in rows(control.streams(), venue="deribit")] == ["live"] * 6,
            timeout_s=90,
        )
        with pytest.raises(RequestError, match="already subscribed on deribit: trades BTC-PERPETUAL"):
            control.subscribe("deribit", ["trades"], ["BTC-PERPETUAL"])

        # more than the cluster holds: returns at once, the streams wait for their CPUs
        pending = control.subscribe("binance_futures", ["trades"], ["BTCUSDT"], redundancy=8)
        assert pending == [f"binance_futures/c0/r{i}" for i in range(8)]
        waiting = rows(control.streams(), venue="binance_futures")
        assert [r["state"] for r in waiting] == ["waiting for 8 CPU"] * 8, waiting
        assert control.unsubscribe("binance_futures", ["trades"], ["BTCUSDT"]) == pending
        assert not rows(control.streams(), venue="binance_futures")  # never ran: nothing to show
        groups = {g["name"]: g["state"] for g in ray.util.placement_group_table().values()}
        assert groups.get(f"{name}:binance_futures/c0") == "REMOVED", groups

        # okx left with nothing: its connector stops and its placement group goes
        changed = control.unsubscribe("okx", ["trades", "l2", "bbo"], ["BTC-USDT", "ETH-USDT", "SOL-USDT"])
        assert changed == ["okx/c0/r0"]
        assert "okx/c0/r0" not in control.actors()
        okx = rows(control.streams(), venue="okx")
        assert okx and {r["state"] for r in okx} == {"stopped"} and all(r["rows"] > 0 for r in okx)
        groups = {g["name"]: g["state"] for g in ray.util.placement_group_table().values()}
        assert groups.get(f"{name}:okx/c0") == "REMOVED", groups
        assert groups.get(f"{name}:binance/c0") == "CREATED", groups
        time.sleep(2)  # binance keeps flowing alone for a moment (not an assertion)
        control.stop()
    finally:
        stop.set()  # after control.stop() this changes nothing; after a failed assertion it ends the capture
        driver.join(180)
    assert not failure, failure
    # every stream that ran, including the symbol added and the venue stopped at run time
    for name, venues in result["tables"].items():
        for venue in ("binance", "okx", "deribit"):
            entry = venues[venue]
            assert entry["written"]["parquet"] == entry["sent"] + entry["rest"], (name, venue, entry)
