"""Issue 10, defect 7: a batch QuestDB committed but whose answer the sink never got (a crash mid-send, a
lost reply) is sent again; the tables are created with DEDUP UPSERT KEYS at start, so it is stored once.

Against the strict ILP receiver, whose /exec takes the DDL and applies the upsert keys as QuestDB does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tests.integration import sink_batches
from tests.integration.ilp_receiver import IlpReceiver
from xtrader.sinks.common import conform
from xtrader.sinks.questdb import QuestDBSink
from xtrader.sinks.spill import Spill

#: the identity of a row in each table (besides the designated timestamp), written out here
KEYS = {
    "trades": ("timestamp", "exchange", "symbol", "trade_id"),
    "l2": ("timestamp", "exchange", "symbol", "seq", "side", "price", "is_snapshot"),
    "bbo": ("timestamp", "exchange", "symbol", "seq", "bid_price", "bid_size", "ask_price", "ask_size"),
    "events": ("timestamp", "exchange", "symbol", "kind", "detail"),
    "book_snapshots": ("timestamp", "exchange", "symbol", "level"),
}


@pytest.fixture
def receiver() -> IlpReceiver:
    with IlpReceiver() as running:
        yield running


def trade_ids(receiver: IlpReceiver, table: str = "xt_trades") -> Counter[str]:
    return Counter(row.fields["trade_id"] for row in receiver.table(table))


def test_every_table_is_created_at_start_with_dedup_upsert_keys(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = QuestDBSink(f"http::addr=127.0.0.1:{receiver.port};", tmp_path, table_prefix="xt_", fsync=False)
    sink.close()
    assert {name: table.keys for name, table in receiver.tables.items()} == {f"xt_{t}": k for t, k in KEYS.items()}
    assert all(table.wal and table.designated == "timestamp" for table in receiver.tables.values())
    assert receiver.write_requests() == 0


def test_every_table_takes_its_batches_with_the_declared_columns(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = QuestDBSink(f"http::addr=127.0.0.1:{receiver.port};", tmp_path, table_prefix="xt_", fsync=False)
    batches = sink_batches.all_tables()
    for table, batch in batches.items():
        sink.write(table, batch)
        sink.write(table, batch)  # sent twice: stored once
    sink.close()
    assert sink.stats()["spill_depth"] == 0 and sink.stats()["rejected_batches"] == 0, sink.stats()["last_error"]
    for table, batch in batches.items():
        assert len(receiver.table(f"xt_{table}")) == conform(table, batch).num_rows, table


def test_a_retry_of_a_commit_whose_answer_was_lost_stores_each_row_once(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = QuestDBSink(
        f"http::addr=127.0.0.1:{receiver.port};", tmp_path, table_prefix="xt_", fsync=False, backoff_initial_s=0.001
    )
    receiver.store_then_fail_next(1)  # committed, then a 503: the sink sends the batch again
    sink.write("trades", sink_batches.trades(rows=5))
    sink.close()
    assert sink.stats()["retries"] == 1
    assert trade_ids(receiver) == Counter(str(i) for i in range(5))


REPLAY = """
import sys
from xtrader.sinks.questdb import QuestDBSink
sink = QuestDBSink(sys.argv[1], sys.argv[2], table_prefix="xt_")
sink.flush()
print("replayed", flush=True)
"""


def test_a_replay_after_a_crash_mid_send_stores_each_row_once(receiver: IlpReceiver, tmp_path: Path) -> None:
    spill = Spill(tmp_path)
    for n in range(4):
        spill.append("trades", conform("trades", sink_batches.trades(rows=50, first_id=100 * n)))
    conf = f"http::addr=127.0.0.1:{receiver.port};"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(REPLAY), conf, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    stored = []

    def crash_on_the_second() -> None:  # committed, not answered: the spill file stays
        stored.append(1)
        if len(stored) == 2:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=60)

    receiver.after_store = crash_on_the_second
    _out, err = child.communicate(timeout=120)
    assert child.returncode == -9, err
    receiver.after_store = None
    assert len(Spill(tmp_path).entries()) == 3  # batch 1 (sent, committed) is still spilled

    restarted = QuestDBSink(conf, tmp_path, table_prefix="xt_", fsync=False)
    restarted.flush()
    restarted.close()
    assert len(Spill(tmp_path).entries()) == 0
    assert trade_ids(receiver) == Counter(str(100 * n + i) for n in range(4) for i in range(50))


def test_the_receiver_applies_upsert_keys_like_questdb(receiver: IlpReceiver) -> None:
    import httpx

    def sql(query: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{receiver.port}/exec", params={"query": query})

    assert sql("CREATE TABLE t (ts TIMESTAMP, k SYMBOL, v DOUBLE) TIMESTAMP(ts) PARTITION BY DAY WAL").json() == {
        "ddl": "OK"
    }
    refused = sql("ALTER TABLE t DEDUP ENABLE UPSERT KEYS(k)")
    assert refused.status_code == 400 and "designated" in refused.json()["error"].replace("dedicated", "designated")
    assert sql("CREATE TABLE u (ts TIMESTAMP, k SYMBOL) TIMESTAMP(ts) PARTITION BY DAY DEDUP UPSERT KEYS(ts)").is_error
    assert sql("ALTER TABLE t DEDUP ENABLE UPSERT KEYS(ts, k)").status_code == 200
    body = b"t,k=a v=1.0 10\nt,k=b v=2.0 10\nt,k=a v=3.0 10\nt,k=a v=4.0 11\n"
    assert httpx.post(f"http://127.0.0.1:{receiver.port}/write", content=body).status_code == 204
    assert [(r.symbols["k"], r.fields["v"], r.timestamp) for r in receiver.table("t")] == [
        ("a", 3.0, 10),
        ("b", 2.0, 10),
        ("a", 4.0, 11),
    ]
    bad = httpx.post(f"http://127.0.0.1:{receiver.port}/write", content=b"t,k=a v=1i 12\n")
    assert bad.status_code == 204  # LONG into the DOUBLE column: QuestDB casts it
    assert httpx.post(f"http://127.0.0.1:{receiver.port}/write", content=b't,k=a v="x" 12\n').status_code == 400
