"""The capture pipeline end to end on real Ray actors, against the simulator's ground truth.

For every venue and table: rows written == rows the simulator sent (block
policy), no duplicates, and every final book equal to the simulator's top 20.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from jobs.capture import run
from jobs.demo import demo_capture

pytestmark = pytest.mark.usefixtures("ray_session")

#: venues whose books start from a REST snapshot: those rows are written but were not on the websocket
REST_SNAPSHOT_VENUES = {"binance", "binance_futures"}


def read(root: Path, table: str) -> pa.Table:
    return ds.dataset(root / table, format="parquet", partitioning="hive").to_table()


def websocket_rows(table: pa.Table, name: str) -> pa.Table:
    """Rows that came over the websocket (REST snapshot rows of l2 left out)."""
    if name != "l2":
        return table
    rest = pc.and_(
        table.column("is_snapshot"),
        pc.is_in(table.column("exchange").cast(pa.string()), pa.array(sorted(REST_SNAPSHOT_VENUES))),
    )
    return table.filter(pc.invert(rest))


def counts(table: pa.Table) -> dict[str, int]:
    exchanges = table.column("exchange").cast(pa.string()).to_pylist()
    out: dict[str, int] = {}
    for exchange in exchanges:
        out[exchange] = out.get(exchange, 0) + 1
    return out


def duplicates(table: pa.Table, keys: list[str]) -> int:
    columns = [
        table.column(k).cast(pa.string()) if pa.types.is_dictionary(table.column(k).type) else table.column(k)
        for k in keys
    ]
    plain = pa.table(dict(zip(keys, columns, strict=True)))
    return plain.num_rows - plain.group_by(keys).aggregate([]).num_rows


def assert_complete(summary: dict[str, Any], root: Path, sinks: tuple[str, ...] = ("parquet",)) -> None:
    for name, venues in summary["tables"].items():
        table = websocket_rows(read(root, name), name)
        on_disk = counts(table)
        every_row = counts(read(root, name))
        assert sum(entry["sent"] for entry in venues.values()) > 0, (name, venues)
        for venue, entry in venues.items():
            assert entry["sent"] is not None, (name, venue, entry)
            for sink in sinks:
                assert entry["written"][sink] == entry["sent"] + entry["rest"], (name, venue, sink, entry)
            assert on_disk.get(venue, 0) == entry["sent"], (name, venue, on_disk, entry)
            assert every_row.get(venue, 0) == entry["written"]["parquet"], (name, venue, every_row, entry)
    assert duplicates(read(root, "trades"), ["exchange", "symbol", "trade_id"]) == 0
    l2 = websocket_rows(read(root, "l2"), "l2")
    assert duplicates(l2, ["exchange", "symbol", "seq", "is_snapshot", "side", "price"]) == 0
    assert summary["books"]["checked"] > 0
    assert summary["books"]["matched"] == summary["books"]["checked"]
    assert summary["events"]["drops"] == 0
    assert summary["latency_ms"]["p50"] is not None


def test_every_row_sent_is_written_once_to_parquet_and_books_match(tmp_path: Path) -> None:
    capture = demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0)
    summary = run(capture, 6.0, summary_json=str(tmp_path / "summary.json"))
    assert (tmp_path / "summary.json").exists()
    assert_complete(summary, tmp_path / "data")
    snapshots = read(tmp_path / "data", "book_snapshots")
    assert snapshots.num_rows > 0


class ReceiverActor:
    """The strict ILP receiver in a process of its own (its pure-Python parser would starve the simulator)."""

    def __init__(self, repo: str) -> None:
        import sys

        sys.path.insert(0, repo)
        from tests.integration.ilp_receiver import IlpReceiver

        self.receiver = IlpReceiver().start()

    def conf(self) -> str:
        return str(self.receiver.conf())

    def table(self, name: str) -> list[Any]:
        return self.receiver.table(name)

    def stop(self) -> None:
        self.receiver.stop()


def test_the_same_through_questdb_against_the_strict_receiver(tmp_path: Path) -> None:
    import ray

    repo = str(Path(__file__).resolve().parents[2])
    receiver_actor = ray.remote(num_cpus=0)(ReceiverActor).remote(repo)
    try:
        conf = ray.get(receiver_actor.conf.remote())
        from xtrader.config import Capture

        data = demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0, questdb=conf).model_dump()
        # the test receiver parses in pure Python, far slower than QuestDB: fewer, larger batches
        data["pipeline"].update(latency_mode="archival", batch_ms=250, batch_rows=5000)
        summary = run(Capture.model_validate(data), 8.0)
        assert_complete(summary, tmp_path / "data", sinks=("parquet", "questdb"))

        class Receiver:
            @staticmethod
            def table(name: str) -> list[Any]:
                return list(ray.get(receiver_actor.table.remote(name)))

        receiver = Receiver()
        for name, venues in summary["tables"].items():
            rows = receiver.table(name)
            by_venue: dict[str, int] = {}
            for row in rows:
                by_venue[row.symbols["exchange"]] = by_venue.get(row.symbols["exchange"], 0) + 1
            for venue, entry in venues.items():
                rest = 0
                if name == "l2" and venue in REST_SNAPSHOT_VENUES:
                    rest = sum(1 for r in rows if r.symbols["exchange"] == venue and r.fields.get("is_snapshot"))
                assert by_venue.get(venue, 0) - rest == entry["sent"], (name, venue)
        # values equal: every Parquet trade is in QuestDB with the same price and size
        trades = read(tmp_path / "data", "trades").to_pydict()
        parquet = {
            (e, s, t): (p, z)
            for e, s, t, p, z in zip(
                trades["exchange"], trades["symbol"], trades["trade_id"], trades["price"], trades["size"], strict=True
            )
        }
        quest = {
            (r.symbols["exchange"], r.symbols["symbol"], r.fields["trade_id"]): (r.fields["price"], r.fields["size"])
            for r in receiver.table("trades")
        }
        assert quest == parquet
    finally:
        ray.get(receiver_actor.stop.remote())
        ray.kill(receiver_actor)


def test_redundant_connections_are_deduplicated_by_the_arbiter(tmp_path: Path) -> None:
    from xtrader.config import Capture

    base = demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0, venues=("binance", "binance_futures"))
    data = base.model_dump()
    for stream in data["streams"]:
        stream["redundancy"] = 2
    data["pipeline"]["rotation_interval_s"] = 2.0  # exercised: the arbiter reports, the driver asks
    summary = run(Capture.model_validate(data), 6.0)
    assert_complete(summary, tmp_path / "data")
    assert summary["events"]["duplicates"] > 0


def test_an_unsatisfiable_placement_group_is_reported_not_waited_for(tmp_path: Path) -> None:
    import time

    from jobs.capture import PlacementTimeout
    from xtrader.config import Capture

    data = demo_capture(str(tmp_path / "data"), symbols=1, venues=("binance",)).model_dump()
    data["pipeline"]["connector_cpus"] = 64
    data["cluster"]["placement_timeout_s"] = 2.0
    started = time.monotonic()
    with pytest.raises(PlacementTimeout, match=r"binance/c0"):
        run(Capture.model_validate(data), 5.0)
    assert time.monotonic() - started < 30


def test_faults_reconnects_and_resyncs_lose_nothing(tmp_path: Path) -> None:
    faults = "drop_rate=0.02,disconnect_after_s=3,duplicate_rate=0.02,malformed_rate=0.01,stale_snapshot=1"
    capture = demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0, faults=faults)
    summary = run(capture, 8.0)
    assert_complete(summary, tmp_path / "data")
    events = summary["events"]
    assert events["reconnects"] > 0 and events["gaps"] > 0 and events["duplicates"] > 0 and events["rejects"] > 0
    kinds = set(read(tmp_path / "data", "events").column("kind").cast(pa.string()).to_pylist())
    assert {"gap", "resync", "reject"} <= kinds


def test_a_symbol_subscribed_at_run_time_is_captured(tmp_path: Path) -> None:
    import threading
    import time

    from xtrader.config import Capture
    from xtrader.control import attach

    data = demo_capture(str(tmp_path / "data"), symbols=3, rate=60.0, venues=("binance",)).model_dump()
    data["streams"][0]["symbols"] = ["BTCUSDT", "ETHUSDT"]
    capture = Capture.model_validate(data)
    stop = threading.Event()
    result: dict[str, Any] = {}
    driver = threading.Thread(target=lambda: result.update(run(capture, 30.0, stop_event=stop)))
    driver.start()
    try:
        control = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                control = attach(namespace="xtrader-tests")
                if control.actors():
                    break
            except LookupError:
                pass
            time.sleep(0.5)
        assert control is not None
        assert control.streams()["binance"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
        time.sleep(2)
        control.subscribe("binance", ["SOLUSDT"])
        assert "SOLUSDT" in control.streams()["binance"]["symbols"]
        time.sleep(4)
        control.stop()
    finally:
        driver.join(120)
        stop.set()
    trades = read(tmp_path / "data", "trades")
    symbols = set(trades.column("symbol").cast(pa.string()).to_pylist())
    assert "SOLUSDT" in symbols
    for name, venues in result["tables"].items():
        for entry in venues.values():
            assert entry["written"]["parquet"] == entry["sent"] + entry["rest"], name


def test_a_killed_connector_is_restarted_and_its_books_recover(tmp_path: Path) -> None:
    import threading
    import time

    import ray

    from xtrader.control import attach

    capture = demo_capture(str(tmp_path / "data"), symbols=2, rate=60.0, venues=("binance",))
    stop = threading.Event()
    result: dict[str, Any] = {}
    driver = threading.Thread(target=lambda: result.update(run(capture, 16.0, stop_event=stop)))
    driver.start()
    try:
        deadline = time.monotonic() + 60
        control = None
        while time.monotonic() < deadline:
            try:
                control = attach(namespace="xtrader-tests")
                if "binance/c0/r0" in control.actors():
                    break
            except LookupError:
                pass
            time.sleep(0.5)
        assert control is not None
        time.sleep(3)
        handle = ray.get(control.handle.handle.remote("binance/c0/r0"))
        ray.kill(handle, no_restart=False)  # Ray restarts it; the driver starts it again
    finally:
        driver.join(180)
        stop.set()
    assert result, "the capture did not finish"
    for venues in result["tables"].values():
        entry = venues["binance"]
        assert 0 < entry["written"]["parquet"] <= entry["sent"] + entry["rest"]  # the dead socket's rows are lost
    assert result["books"]["matched"] == result["books"]["checked"] > 0
    trades = read(tmp_path / "data", "trades")
    assert duplicates(trades, ["exchange", "symbol", "trade_id"]) == 0
