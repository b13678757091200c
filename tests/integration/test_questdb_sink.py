"""QuestDBSink against the strict ILP receiver: every value, SYMBOL tags, nulls omitted, retries, spill and replay."""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from questdb import Sender, TimestampNanos

from tests.integration import sink_batches
from tests.integration.ilp_receiver import IlpReceiver, LineError, Row, parse_body
from xtrader import schema
from xtrader.errors import ConfigError
from xtrader.sinks import ilp
from xtrader.sinks.questdb import QuestDBSink

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer

#: the columns each table sends as SYMBOL (tags), written out here rather than derived from the sink
SYMBOLS = {
    "trades": ("exchange", "symbol", "side"),
    "l2": ("exchange", "symbol", "side"),
    "bbo": ("exchange", "symbol"),
    "events": ("exchange", "symbol", "kind"),
    "book_snapshots": ("exchange", "symbol"),
}
TIMESTAMPS = ("exchange_ts", "receive_ts", "ts")


@pytest.fixture
def receiver() -> Iterator[IlpReceiver]:
    with IlpReceiver() as running:
        yield running


def make_sink(receiver: IlpReceiver, spill: Path, protocol_version: int = 1, **options: Any) -> QuestDBSink:
    options.setdefault("backoff_initial_s", 0.001)
    options.setdefault("backoff_max_s", 0.005)
    conf = f"http::addr=127.0.0.1:{receiver.port};" + options.pop("conf_extra", "")
    return QuestDBSink(conf, spill, protocol_version=protocol_version, table_prefix="xt_", fsync=False, **options)


def expected_rows(table: str, batch: pa.RecordBatch, protocol_version: int) -> list[dict[str, Any]]:
    """What QuestDB should receive for `batch`, computed from the stored columns, independently of the sink."""
    stored = schema.stored(batch, table)
    out = []
    for record in stored.cast(sink_batches.plain_schema(stored.schema)).to_pylist():
        symbols = {name: record[name] for name in SYMBOLS[table] if record[name] is not None}
        fields = {name: value for name, value in record.items() if name not in SYMBOLS[table] and value is not None}
        for name in TIMESTAMPS:
            if name in fields and protocol_version == 1:
                fields[name] = fields[name] // 1000 * 1000  # the `t` suffix carries microseconds
        at = record.get("exchange_ts") or record.get("receive_ts") if table in ("trades", "l2", "bbo") else record["ts"]
        out.append({"symbols": symbols, "fields": fields, "timestamp": at})
    return out


def received(rows: list[Row]) -> list[dict[str, Any]]:
    return [{"symbols": row.symbols, "fields": row.fields, "timestamp": row.timestamp} for row in rows]


def trade_ids(receiver: IlpReceiver) -> list[str]:
    return [row.fields["trade_id"] for row in receiver.table("xt_trades")]


@pytest.mark.parametrize("protocol_version", [1, 2])
def test_every_table_arrives_with_every_value(receiver: IlpReceiver, tmp_path: Path, protocol_version: int) -> None:
    sink = make_sink(receiver, tmp_path, protocol_version)
    batches = sink_batches.all_tables()
    for table, batch in batches.items():
        sink.write(table, batch)

    for table, batch in batches.items():
        rows = receiver.table(f"xt_{table}")
        assert received(rows) == expected_rows(table, batch, protocol_version), table
        for row in rows:
            assert set(row.symbols) <= set(SYMBOLS[table])  # SYMBOL columns travel as tags, nothing else does
            assert not set(row.fields) & set(SYMBOLS[table])
            assert not any(isinstance(v, float) and math.isnan(v) for v in row.fields.values())
            assert {row.types[name] for name in TIMESTAMPS if name in row.fields} <= {"timestamp"}
    trades = receiver.table("xt_trades")
    assert trades[0].types == {
        "exchange_ts": "timestamp",
        "receive_ts": "timestamp",
        "trade_id": "string",
        "price": "double",
        "size": "double",
    }
    assert receiver.table("xt_l2")[0].types["seq"] == "long"
    assert receiver.table("xt_l2")[0].types["is_snapshot"] == "boolean"
    assert sink.stats()["rows"] == {
        table: {b.column("exchange")[0].as_py(): b.num_rows} for table, b in batches.items()
    }
    sink.close()


def test_bbo_null_sides_are_left_out_of_the_line(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path)
    sink.write("bbo", sink_batches.bbo())

    both, no_bid, no_ask = receiver.table("xt_bbo")
    assert {"bid_price", "bid_size", "ask_price", "ask_size"} <= set(both.fields)
    assert "bid_price" not in no_bid.fields and "bid_size" not in no_bid.fields
    assert no_bid.fields["ask_price"] == 42000.5
    assert "ask_price" not in no_ask.fields and "ask_size" not in no_ask.fields
    # no exchange time: the designated timestamp falls back to the receipt time, exchange_ts stays NULL
    assert "exchange_ts" not in no_ask.fields
    assert no_ask.timestamp == sink_batches.DAY + 2 * 1_000 + 777


def test_events_without_any_symbol_arrive(receiver: IlpReceiver, tmp_path: Path) -> None:
    # connection-wide events (connect, disconnect) carry no symbol: an all-null SYMBOL column
    from xtrader.batch import Columns

    columns = Columns("binance")
    columns.events.add(None, sink_batches.DAY + 1, "connect", "wss://example")
    columns.events.add(None, sink_batches.DAY + 2, "disconnect", None)
    events = columns.flush().events
    assert events is not None and events.column("symbol").null_count == 2
    # the fast dataframe path itself takes it (no fallback to rows), byte for byte like the row path
    fast, slow = Buffer(protocol_version=1), Buffer(protocol_version=1)
    ilp.encode_dataframe(fast, "xt_events", "events", events)
    ilp.encode_rows(slow, "xt_events", "events", events)
    assert bytes(fast) == bytes(slow)
    sink = make_sink(receiver, tmp_path)
    sink.write("events", events)
    rows = receiver.table("xt_events")
    assert [(r.symbols.get("kind"), "symbol" in r.symbols, r.timestamp) for r in rows] == [
        ("connect", False, sink_batches.DAY + 1),
        ("disconnect", False, sink_batches.DAY + 2),
    ]
    assert sink.stats()["rows"] == {"events": {"binance": 2}}
    sink.close()


def test_a_503_is_retried_and_the_batch_stored_once(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path)
    receiver.fail_next(2, 503)

    sink.write("trades", sink_batches.trades(rows=4))

    assert trade_ids(receiver) == ["0", "1", "2", "3"]
    stats = sink.stats()
    assert (stats["retries"], stats["failures"], stats["spill_depth"]) == (2, 2, 0)
    assert receiver.write_requests() == 3


def test_outage_spills_in_order_and_recovery_replays_without_loss_or_duplicates(
    receiver: IlpReceiver, tmp_path: Path
) -> None:
    sink = make_sink(receiver, tmp_path)
    sink.write("trades", sink_batches.trades(rows=3, first_id=0))
    receiver.stop_listening()

    for n in range(1, 5):
        sink.write("trades", sink_batches.trades(rows=3, first_id=3 * n))
    sink.write("bbo", sink_batches.bbo())

    stats = sink.stats()
    assert (stats["spill_depth"], stats["spill_rows"], stats["spilled"]) == (5, 15, 5)
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [
        "00000000000000000000.trades.parquet",
        "00000000000000000001.trades.parquet",
        "00000000000000000002.trades.parquet",
        "00000000000000000003.trades.parquet",
        "00000000000000000004.bbo.parquet",
    ]
    assert trade_ids(receiver) == ["0", "1", "2"]

    receiver.start_listening()
    sink.write("trades", sink_batches.trades(rows=3, first_id=15))  # queued behind the spill, never ahead of it
    sink.flush()

    assert trade_ids(receiver) == [str(i) for i in range(18)]
    assert len(receiver.table("xt_bbo")) == 3
    assert sink.stats()["spill_depth"] == 0
    assert sink.stats()["rows"]["trades"] == {"binance": 18}
    assert not list(tmp_path.glob("*.parquet"))


def test_spill_survives_a_restart_and_is_replayed_first(receiver: IlpReceiver, tmp_path: Path) -> None:
    receiver.stop_listening()
    first = make_sink(receiver, tmp_path)
    first.write("trades", sink_batches.trades(rows=2, first_id=0))
    first.write("trades", sink_batches.trades(rows=2, first_id=2))
    first.close()  # QuestDB still down: the batches stay on disk
    receiver.start_listening()

    second = make_sink(receiver, tmp_path)
    assert second.stats()["spill_depth"] == 2
    second.write("trades", sink_batches.trades(rows=2, first_id=4))
    second.flush()

    assert trade_ids(receiver) == ["0", "1", "2", "3", "4", "5"]


def test_spilled_batch_reads_back_with_its_schema(receiver: IlpReceiver, tmp_path: Path) -> None:
    receiver.stop_listening()
    sink = make_sink(receiver, tmp_path)
    batch = sink_batches.l2()
    sink.write("l2", batch)

    (spilled,) = tmp_path.glob("*.l2.parquet")
    assert pq.read_table(spilled).equals(pa.Table.from_batches([schema.stored(batch, "l2")]))


def test_a_rejected_batch_is_set_aside_and_does_not_block_the_rest(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path)
    receiver.reject_tables.add("xt_bbo")

    sink.write("bbo", sink_batches.bbo())
    sink.write("trades", sink_batches.trades(rows=2))

    assert trade_ids(receiver) == ["0", "1"]
    stats = sink.stats()
    assert (stats["rejected_batches"], stats["rejected_rows"], stats["spill_depth"], stats["retries"]) == (1, 3, 0, 0)
    (kept,) = (tmp_path / "rejected").glob("*.bbo.parquet")
    assert pq.read_table(kept).num_rows == 3
    assert "read-only" in (tmp_path / "rejected" / f"{kept.name}.error.txt").read_text()


def test_a_batch_rejected_during_replay_is_set_aside(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path)
    receiver.stop_listening()
    sink.write("bbo", sink_batches.bbo())
    sink.write("trades", sink_batches.trades(rows=2))
    receiver.reject_tables.add("xt_bbo")
    receiver.start_listening()

    sink.flush()

    assert trade_ids(receiver) == ["0", "1"]
    assert sink.stats()["spill_depth"] == 0
    assert len(list((tmp_path / "rejected").glob("*.bbo.parquet"))) == 1


def test_slow_responses_within_the_timeout_succeed(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path, conf_extra="request_timeout=5000;")
    receiver.faults.delay_s = 0.2

    sink.write("trades", sink_batches.trades(rows=2))

    assert trade_ids(receiver) == ["0", "1"]
    assert sink.stats()["flush_p50_ms"] >= 200


def test_the_flush_metric_times_delivered_requests_not_failed_writes(receiver: IlpReceiver, tmp_path: Path) -> None:
    from xtrader import metrics
    from xtrader.sinkfront import SinkFront

    front = SinkFront(make_sink(receiver, tmp_path, conf_extra="request_timeout=5000;"), "questdb")
    receiver.stop_listening()
    front.write("c0", 0, {"trades": sink_batches.trades(rows=2)})  # fails fast: spilled, not a flush
    receiver.faults.delay_s = 0.2
    receiver.start_listening()
    front.flush()  # the replay: two delivered requests (the batch, the sink's own "failing" events row), 0.2 s each
    assert trade_ids(receiver) == ["0", "1"]
    flush = metrics.latency(front.stats()["metrics"], metrics.SINK_FLUSH, channel="questdb")
    assert flush.count == 2
    assert flush.quantile(0.5) >= 0.2e9


def test_a_response_slower_than_the_timeout_counts_as_a_failure(receiver: IlpReceiver, tmp_path: Path) -> None:
    # at-least-once: the receiver (like QuestDB) still commits the timed-out request; the sink cannot know
    sink = make_sink(receiver, tmp_path, attempts=1, conf_extra="request_timeout=100;")
    receiver.faults.delay_s = 0.3

    sink.write("trades", sink_batches.trades(rows=2))

    stats = sink.stats()
    assert (stats["failures"], stats["spill_depth"]) == (1, 1)
    assert "timeout" in stats["last_error"]


def test_protocol_version_is_explicit_so_settings_is_never_asked(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path)
    sink.write("trades", sink_batches.trades(rows=1))

    assert "protocol_version=1;" in sink.conf
    assert "retry_timeout=0;" in sink.conf
    assert [path for _, path, _ in receiver.requests if path != "/exec"] == ["/write"]  # /exec: the tables


@pytest.mark.parametrize(
    ("conf", "options"),
    [
        ("tcp::addr=localhost:9009;", {}),
        ("http::addr=localhost:9000;protocol_version=auto;", {}),
        ("http::addr=localhost:9000;", {"table_prefix": "bad-prefix"}),
        ("http::addr=localhost:9000;", {"protocol_version": 3}),
    ],
)
def test_unusable_configuration_is_refused(tmp_path: Path, conf: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        QuestDBSink(conf, tmp_path, **options)


def test_a_batch_that_does_not_fit_its_schema_is_refused(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        sink.write("bbo", sink_batches.trades())
    with pytest.raises(ValueError, match="unknown table"):
        sink.write("quotes", sink_batches.trades())


@pytest.mark.parametrize("protocol_version", [1, 2])
def test_row_and_dataframe_encoders_write_the_same_bytes(protocol_version: int) -> None:
    for table, batch in sink_batches.all_tables().items():
        stored = schema.stored(batch, table)
        by_rows, by_frame = Buffer(protocol_version=protocol_version), Buffer(protocol_version=protocol_version)
        ilp.encode_rows(by_rows, table, table, stored)
        ilp.encode_dataframe(by_frame, table, table, stored)
        assert bytes(by_rows) == bytes(by_frame), table


# the receiver itself: strict, and speaking QuestDB's HTTP dialect ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"t a=\n",  # field value missing
        b"t a=1x\n",  # not a number
        b"t a=1.2.3\n",
        b't a="unterminated\n',
        b"t,s= a=1\n",  # tag value missing
        b"t,s=x 123\n",  # tags only: QuestDB's parser wants a field before the timestamp
        b"t a=1i,a=2i\n",  # same column twice
        b"t a=9223372036854775808i\n",  # LONG overflow
        b"t a=1 -5\n",  # negative timestamp
        b"t a=1 12x\n",
        b"t a=1 1 2\n",  # trailing bytes
        b"t\n",
        b"bad/table a=1\n",
        b"t a.b=1\n",  # '.' is not allowed in column names
    ],
)
def test_receiver_rejects_malformed_lines_like_questdb(receiver: IlpReceiver, body: bytes) -> None:
    response = httpx.post(f"http://127.0.0.1:{receiver.port}/write", content=b"t ok=1\n" + body)

    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid"
    assert error["line"] == 2
    assert error["message"].startswith("failed to parse line protocol:errors encountered on line(s):\nerror in line 2")
    assert error["errorId"]
    assert receiver.table("t") == []  # one request, one transaction


def test_receiver_keeps_column_types_per_table(receiver: IlpReceiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}/api/v2/write"
    assert httpx.post(url, content=b"t a=1.5,n=1i\n").status_code == 204
    assert httpx.post(url, content=b"t a=2i\n").status_code == 204  # LONG into DOUBLE widens
    response = httpx.post(url, content=b't n="text"\n')
    assert response.status_code == 400
    assert "cast error" in response.json()["message"]


def test_receiver_parses_escapes_binary_doubles_and_precision(receiver: IlpReceiver) -> None:
    # a double whose binary form holds '\n', ',' and ' ' bytes: the body must not be split on newlines first
    value = struct.unpack("<d", b"\n, \n\x00\x00\xf0\x3f")[0]
    body = (
        b"my\\ table,sym\\ bol=a\\ b\\=c\\,d "
        b's="q\\"uo\\\\te",b=t,f==\x10' + struct.pack("<d", value) + b",ts=1700000000123456t,tn=5n 1700000000\n"
    )
    response = httpx.post(f"http://127.0.0.1:{receiver.port}/write?precision=s", content=body)

    assert response.status_code == 204, response.text
    (row,) = receiver.table("my table")
    assert row.symbols == {"sym bol": "a b=c,d"}
    assert row.fields == {"s": 'q"uo\\te', "b": True, "f": value, "ts": 1_700_000_000_123_456_000, "tn": 5}
    assert row.timestamp == 1_700_000_000_000_000_000


def test_receiver_settings_and_ping_answer_like_questdb(receiver: IlpReceiver) -> None:
    settings = httpx.get(f"http://127.0.0.1:{receiver.port}/settings")
    ping = httpx.get(f"http://127.0.0.1:{receiver.port}/ping")

    assert settings.json()["config"]["line.proto.support.versions"] == [1, 2]
    assert ping.status_code == 204
    assert "X-Influxdb-Version" in ping.headers


def test_the_client_negotiates_its_protocol_from_the_receivers_settings(receiver: IlpReceiver) -> None:
    with Sender.from_conf(f"http::addr=127.0.0.1:{receiver.port};") as sender:
        sender.row("t", columns={"x": 0.1}, at=TimestampNanos(1))

    assert [path for _, path, _ in receiver.requests] == ["/settings", "/write"]
    (row,) = receiver.table("t")
    assert row.fields == {"x": 0.1}


def test_parse_body_reports_the_failing_line() -> None:
    with pytest.raises(LineError, match="Field value is missing") as caught:
        parse_body(b"t a=1\nt a=2\nt b=\n")
    assert caught.value.line == 3


def test_a_damaged_spill_file_is_set_aside_and_the_queue_goes_on(receiver: IlpReceiver, tmp_path: Path) -> None:
    receiver.stop_listening()
    sink = make_sink(receiver, tmp_path)
    sink.write("trades", sink_batches.trades(rows=2, first_id=0))
    sink.write("trades", sink_batches.trades(rows=2, first_id=2))
    first = sorted(tmp_path.glob("*.parquet"))[0]
    first.write_bytes(b"not parquet any more")
    receiver.start_listening()

    sink.flush()

    assert trade_ids(receiver) == ["2", "3"]
    assert (tmp_path / "rejected" / first.name).exists()
    assert sink.stats()["spill_depth"] == 0


def test_dictionaries_with_repeated_values_are_still_written(receiver: IlpReceiver, tmp_path: Path) -> None:
    sink = make_sink(receiver, tmp_path)
    batch = sink_batches.trades(rows=3)
    symbol = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int32()), pa.array(["BTCUSDT", "BTCUSDT", "X"]))
    sink.write("trades", batch.set_column(1, batch.schema.field(1), symbol))

    assert [row.symbols["symbol"] for row in receiver.table("xt_trades")] == ["BTCUSDT", "BTCUSDT", "X"]
    assert sink.stats()["encode_errors"] == 0
