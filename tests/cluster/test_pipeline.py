"""The capture pipeline end to end on real Ray actors, against the simulator's ground truth.

For every venue and table: rows written == rows the simulator sent (block
policy), no duplicates, and every final book equal to the simulator's top 20.

A capture runs until a condition holds (rows of every table and venue, every book valid, the faults
seen), with a generous timeout, never for a fixed time: on a busy machine it just takes longer.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from jobs.demo import demo_capture
from jobs.run import run
from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_until_met, assert_written, wait_for
from xtrader.driver.until import StopWhen

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


#: a capture of the simulator stops once every table of every venue has rows and every book is valid
UNTIL = StopWhen(min_rows=MIN_ROWS, books_valid=True)


def capture_until(capture: Any, until: StopWhen = UNTIL, **options: Any) -> dict[str, Any]:
    """Run `capture` until `until` holds (at most UNTIL_TIMEOUT_S); its summary."""
    summary = run(capture, UNTIL_TIMEOUT_S, until=until, **options)
    assert_until_met(summary)
    return summary


def book_count(capture: Any) -> int:
    """The books a capture keeps: one per l2 symbol."""
    return sum(len(stream.symbols) for stream in capture.streams if "l2" in stream.tables)


def assert_complete(
    summary: dict[str, Any], root: Path, sinks: tuple[str, ...] = ("parquet",), *, faults: bool = False
) -> None:
    assert_written(summary, sinks)
    for name, venues in summary["tables"].items():
        on_disk = counts(websocket_rows(read(root, name), name))
        every_row = counts(read(root, name))
        for venue, entry in venues.items():
            if venue in REST_SNAPSHOT_VENUES or not entry["rest"]:
                # (OKX REST book rows look like its websocket snapshots on disk: for them, every row is
                # checked against sent + rest below)
                assert on_disk.get(venue, 0) == entry["sent"], (name, venue, on_disk, entry)
            assert every_row.get(venue, 0) == entry["written"]["parquet"], (name, venue, every_row, entry)
    assert duplicates(read(root, "trades"), ["exchange", "symbol", "trade_id"]) == 0
    l2 = websocket_rows(read(root, "l2"), "l2")
    assert duplicates(l2, ["exchange", "symbol", "seq", "is_snapshot", "side", "price"]) == 0
    assert summary["books"]["checked"] > 0
    assert summary["books"]["matched"] == summary["books"]["checked"]
    assert summary["events"]["drops"] == 0
    if not faults:
        # no fault, no gap: l2 reached every book in order (a batch overtaking another is a false gap)
        assert summary["events"]["gaps"] == 0, summary["events"]
    assert summary["latency_ms"]["p50"] is not None


def test_every_row_sent_is_written_once_to_parquet_and_books_match(tmp_path: Path) -> None:
    capture = demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0)
    summary = capture_until(capture, summary_json=str(tmp_path / "summary.json"))
    assert (tmp_path / "summary.json").exists()
    assert_complete(summary, tmp_path / "data")
    assert summary["books"]["checked"] == book_count(capture)
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
        summary = capture_until(Capture.model_validate(data))
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
    capture = Capture.model_validate(data)
    summary = capture_until(capture)
    assert_complete(summary, tmp_path / "data")
    assert summary["books"]["checked"] == book_count(capture)
    assert summary["events"]["duplicates"] > 0


def test_an_unsatisfiable_placement_group_is_reported_not_waited_for(tmp_path: Path) -> None:
    import time

    from jobs.fleet import PlacementTimeout
    from xtrader.config import Capture

    data = demo_capture(str(tmp_path / "data"), symbols=1, venues=("binance",)).model_dump()
    data["pipeline"]["connector_cpus"] = 64
    data["cluster"]["placement_timeout_s"] = 2.0
    started = time.monotonic()
    with pytest.raises(PlacementTimeout, match=r"binance/c0"):
        run(Capture.model_validate(data), 5.0)
    assert time.monotonic() - started < 30


#: the faults test's faults end this long after the simulator started
FAULTS_FOR_S = 20.0


@pytest.mark.parametrize("fused", [False, True], ids=["actors", "fused"])
def test_faults_reconnects_and_resyncs_lose_nothing(tmp_path: Path, fused: bool) -> None:
    # faults for the first 20 s, then the venues behave: the capture must recover, every book valid again
    # (fused: every stage in one process, `pipeline.fused`)
    from xtrader.config import Capture

    faults = (
        "drop_rate=0.02,disconnect_after_s=3,duplicate_rate=0.02,malformed_rate=0.01,stale_snapshot=1,"
        f"faults_for_s={FAULTS_FOR_S:g}"
    )
    data = demo_capture(str(tmp_path / "data"), symbols=2, rate=40.0, faults=faults).model_dump()
    data["pipeline"]["fused"] = fused
    capture = Capture.model_validate(data)
    seen = ("reconnects", "gaps", "duplicates", "rejects")
    first_check: list[float] = []

    def faults_seen_and_over_and_every_link_up(stats: dict[str, Any], totals: dict[str, Any]) -> bool:
        # the faults' 20 s count from the simulator's start, before the first check: stopping earlier, a fault
        # during the final drain (a disconnect after the market paused) leaves books to resync against a paused
        # venue (a reconnect's snapshot then repeats the last REST snapshot's rows) or not valid at the compare
        first_check[:1] = first_check[:1] or [time.monotonic()]
        over = time.monotonic() - first_check[0] >= FAULTS_FOR_S
        # stopping while a venue reconnects leaves its last updates sent to no one: its books cannot be checked
        connectors = [s for s in stats.values() if isinstance(s, dict) and "connected" in s]
        return (
            over
            and all(totals["events"][k] > 0 for k in seen)
            and bool(connectors)
            and all(s["connected"] for s in connectors)
        )

    until = StopWhen(min_rows=MIN_ROWS, books_valid=True, check=faults_seen_and_over_and_every_link_up)
    summary = capture_until(capture, until)
    assert_complete(summary, tmp_path / "data", faults=True)
    events = summary["events"]
    assert all(events[k] > 0 for k in seen), events
    # most books were compared with the simulator's (not one whose last updates a fault kept from every socket)
    books = book_count(capture)
    assert summary["books"]["checked"] > books // 2, (summary["books"], books)
    kinds = set(read(tmp_path / "data", "events").column("kind").cast(pa.string()).to_pylist())
    assert {"gap", "resync", "reject"} <= kinds


def controller(actor: str) -> Any:
    """The running capture's control handle, once `actor` is registered."""
    from xtrader.control import attach

    def ready() -> Any:
        control = attach(namespace="xtrader-tests")
        return control if actor in control.actors() else None

    return wait_for(f"the capture's controller with {actor}", ready)


@contextlib.contextmanager
def driven(capture: Any) -> Iterator[dict[str, Any]]:
    """`run(capture)` in a thread while the body steers it (it must end with `control.stop()`); yields the dict
    the summary lands in once the capture finished."""
    import threading

    stop = threading.Event()
    result: dict[str, Any] = {}
    driver = threading.Thread(target=lambda: result.update(run(capture, UNTIL_TIMEOUT_S, stop_event=stop)))
    driver.start()
    try:
        yield result
    finally:
        driver.join(UNTIL_TIMEOUT_S)
        stop.set()
    assert result, "the capture did not finish"


def book_stats(control: Any, venue: str) -> dict[str, Any]:
    stats = control.actor_stats().get(f"book/{venue}", {})
    return stats if "valid" in stats else {"valid": 0, "symbols": {}}


def test_a_symbol_subscribed_at_run_time_is_captured(tmp_path: Path) -> None:
    from xtrader.config import Capture

    data = demo_capture(str(tmp_path / "data"), symbols=3, rate=60.0, venues=("binance",)).model_dump()
    data["streams"][0]["symbols"] = ["BTCUSDT", "ETHUSDT"]
    capture = Capture.model_validate(data)
    with driven(capture) as result:
        control = controller("binance/c0/r0")
        assert control.stream_config()["binance"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
        # subscribe once the capture streams (both books valid), stop once the new symbol's book is valid too
        wait_for("2 books valid", lambda: book_stats(control, "binance")["valid"] >= 2)
        control.subscribe("binance", ["trades", "l2", "bbo"], ["SOLUSDT"])
        assert "SOLUSDT" in control.stream_config()["binance"]["symbols"]
        wait_for(
            "SOLUSDT's book valid",
            lambda: (b := book_stats(control, "binance"))["valid"] >= 3 and "SOLUSDT" in b["symbols"],
        )
        control.stop()
    l2 = websocket_rows(read(tmp_path / "data", "l2"), "l2")
    assert "SOLUSDT" in set(l2.column("symbol").cast(pa.string()).to_pylist())
    assert_written(result)


def test_a_killed_connector_is_restarted_and_its_books_recover(tmp_path: Path) -> None:
    import time

    import ray

    capture = demo_capture(str(tmp_path / "data"), symbols=2, rate=60.0, venues=("binance",))
    connector = "binance/c0/r0"
    with driven(capture) as result:
        control = controller(connector)

        def streaming(source_id: str | None = None) -> Any:
            """The connector's stats once it streams (a new incarnation of it, when `source_id` is the old one)."""
            stats = control.actor_stats()
            mine = stats.get(connector, {})
            book = stats.get("book/binance", {})
            fresh = mine.get("source_id") not in (None, source_id)
            return mine if fresh and mine.get("messages", 0) >= 100 and book.get("valid") == 2 else None

        before = wait_for("the connector streaming, both books valid", streaming)
        killed_ns = time.time_ns()
        handle = ray.get(control.handle.handle.remote(connector))
        ray.kill(handle, no_restart=False)  # Ray restarts it; the driver starts it again
        wait_for("the restarted connector streaming, both books valid", lambda: streaming(before["source_id"]))
        control.stop()
    assert result["books"]["matched"] == result["books"]["checked"] == book_count(capture)
    trades = read(tmp_path / "data", "trades")
    assert duplicates(trades, ["exchange", "symbol", "trade_id"]) == 0
    # what was on the dead socket is lost, and only that: the loss is bounded by what was recorded
    lost = {
        table: venues["binance"]["sent"] + venues["binance"]["rest"] - venues["binance"]["written"]["parquet"]
        for table, venues in result["tables"].items()
    }
    assert all(n >= 0 for n in lost.values()), result["tables"]
    # the trades lost are among the ids missing around the kill (those ids also count trades made while no
    # connection was open, which the simulator sent to no one)
    assert lost["trades"] <= missing_trade_ids(trades, killed_ns), (lost, result["tables"])
    l2 = websocket_rows(read(tmp_path / "data", "l2"), "l2")
    gaps, snapshots = recorded_gaps(read(tmp_path / "data", "events"), read(tmp_path / "data", "l2"))
    holes = l2_holes(l2)
    for symbol, first, last, next_seq in holes:
        # each run of update ids missing from l2 was recorded: a gap event spanning it, or the REST
        # snapshot the book resynced from right after it
        assert any(lo <= first and last <= hi for lo, hi in gaps.get(symbol, [])) or any(
            last <= seq < next_seq for seq in snapshots.get(symbol, [])
        ), (symbol, first, last, gaps, snapshots)
    # a bbo row per book update at most: what bbo lost fits in the update ids missing from l2
    assert lost["bbo"] <= sum(last - first + 1 for _, first, last, _ in holes), (lost, holes)


def missing_trade_ids(trades: pa.Table, killed_ns: int) -> int:
    """Trade ids missing inside each symbol's run of ids (the simulator numbers a symbol's trades 1, 2, 3 ...).

    Each symbol may have one run of missing ids, and it straddles the kill.
    """
    total = 0
    for symbol in set(trades.column("symbol").cast(pa.string()).to_pylist()):
        rows = trades.filter(pc.equal(trades.column("symbol").cast(pa.string()), symbol))
        pairs = sorted(
            zip(
                (int(t) for t in rows.column("trade_id").to_pylist()),
                rows.column("exchange_ts").cast(pa.int64()).to_pylist(),
                strict=True,
            )
        )
        holes = [(a, b) for a, b in itertools.pairwise(pairs) if b[0] != a[0] + 1]
        assert len(holes) <= 1, (symbol, holes)
        for (id_a, ts_a), (id_b, ts_b) in holes:
            assert ts_a <= killed_ns <= ts_b, (symbol, ts_a, killed_ns, ts_b)
            total += id_b - id_a - 1
    return total


def l2_holes(l2: pa.Table) -> list[tuple[str, int, int, int]]:
    """(symbol, first, last missing update id, seq of the next message) of each break in a symbol's chain of
    websocket l2 messages (Binance: a message's first id U follows the previous one's last id u)."""
    out = []
    plain = pa.table({name: l2.column(name) for name in ("seq", "first_seq")}).append_column(
        "symbol", l2.column("symbol").cast(pa.string())
    )  # (dictionaries differ between files: group on plain strings)
    messages = plain.group_by(["symbol", "seq", "first_seq"]).aggregate([])
    by_symbol: dict[str, list[tuple[int, int]]] = {}
    for symbol, seq, first in zip(
        messages.column("symbol").cast(pa.string()).to_pylist(),
        messages.column("seq").to_pylist(),
        messages.column("first_seq").to_pylist(),
        strict=True,
    ):
        by_symbol.setdefault(symbol, []).append((first, seq))
    for symbol, chain in by_symbol.items():
        chain.sort()
        for (_, last), (first, seq) in itertools.pairwise(chain):
            if first > last + 1:
                out.append((symbol, last + 1, first - 1, seq))
    return out


def recorded_gaps(events: pa.Table, l2: pa.Table) -> tuple[dict[str, list[tuple[int, int]]], dict[str, list[int]]]:
    """What the capture recorded of its losses, per symbol: the update-id range of each gap event (from
    `after L` + 1 to `first U` - 1), and the update id S of each REST snapshot it stored (is_snapshot rows)."""
    import re

    out: dict[str, list[tuple[int, int]]] = {}
    binance = events.filter(pc.equal(events.column("exchange").cast(pa.string()), "binance"))
    for symbol, kind, detail in zip(
        binance.column("symbol").cast(pa.string()).to_pylist(),
        binance.column("kind").cast(pa.string()).to_pylist(),
        binance.column("detail").cast(pa.string()).to_pylist(),
        strict=True,
    ):
        found = re.search(r"first (\d+) after (\d+)", detail or "")
        if kind == "gap" and found:
            out.setdefault(symbol, []).append((int(found.group(2)) + 1, int(found.group(1)) - 1))
    snapshots: dict[str, list[int]] = {}
    rest = l2.filter(l2.column("is_snapshot"))
    for symbol, seq in set(
        zip(rest.column("symbol").cast(pa.string()).to_pylist(), rest.column("seq").to_pylist(), strict=True)
    ):
        snapshots.setdefault(symbol, []).append(int(seq))
    return out, snapshots
