"""Issue 12 item 7: code latency on the monotonic clock (per-batch anchor), overall latency on the wall clock."""

from __future__ import annotations

import pytest

from xtrader import metrics
from xtrader.batch import Batches, Columns
from xtrader.bookservice import BookService
from xtrader.clock import Anchor, Receipt, host_id
from xtrader.sinkfront import SinkFront
from xtrader.venues import venue

MS = 1_000_000
WALL = 1_700_000_000_000_000_000  # the producer's wall clock at its flush
MONO = 50_000 * MS  # the producer's monotonic clock at its flush
STEP = 500 * MS  # the wall clock is stepped forward (NTP) while the batch is in flight

OKX_SNAPSHOT = (
    b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["101","1","0","1"]],'
    b'"bids":[["100","1","0","1"]],"ts":"%d","checksum":0,"seqId":5,"prevSeqId":-1}]}'
)


def flushed(exchange_ts_ms: int, waited_ns: int) -> Batches:
    """An OKX l2 batch whose one frame was received `waited_ns` before the flush at (WALL, MONO)."""
    v = venue("okx")
    columns = Columns("okx", keep_text=True)
    v.parse(OKX_SNAPSHOT % exchange_ts_ms, Receipt(WALL - waited_ns, MONO - waited_ns), columns)
    batches = columns.flush(WALL)
    batches.anchor = Anchor(host_id(), WALL, MONO)
    return batches


class Recorder:
    def write(self, table: str, batch: object) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_sink_code_latency_runs_on_the_monotonic_clock_while_overall_latency_uses_the_wall_clock():
    batches = flushed(exchange_ts_ms=WALL // MS - 20, waited_ns=1 * MS)
    # 3 ms after the flush on the monotonic clock; the wall clock meanwhile jumped 500 ms
    front = SinkFront(Recorder(), "parquet", clock=lambda: WALL + 3 * MS + STEP, mono=lambda: MONO + 3 * MS)
    assert front.write("c0", 0, batches.tables(), anchor=batches.anchor)
    assert front.stats()["latency_ms"]["p50"] == pytest.approx(4.0, rel=0.01)  # 1 ms buffered + 3 ms on
    snapshot = front.stats()["metrics"]
    code = metrics.latency(snapshot, metrics.CODE_LATENCY, exchange="okx", channel="l2")
    overall = metrics.latency(snapshot, metrics.OVERALL_LATENCY, exchange="okx", channel="l2")
    assert code.count == 2 and metrics.latency_ms(code)["p50"] == pytest.approx(4.0, rel=0.01)
    assert metrics.latency_ms(overall)["p50"] == pytest.approx(523.0, rel=0.01)  # wall - exchange time
    assert front.stats()["latency_skipped_rows"] == 0


def test_a_batch_flushed_on_another_host_gets_no_code_latency_only_a_count():
    batches = flushed(exchange_ts_ms=WALL // MS - 20, waited_ns=1 * MS)
    batches.anchor = Anchor("another-host/boot", WALL, MONO)
    front = SinkFront(Recorder(), "parquet", clock=lambda: WALL + 3 * MS, mono=lambda: MONO + 3 * MS)
    assert front.write("c0", 0, batches.tables(), anchor=batches.anchor)
    stats = front.stats()
    assert stats["latency_ms"]["p50"] is None and stats["latency_skipped_rows"] == 2
    overall = metrics.latency(stats["metrics"], metrics.OVERALL_LATENCY, exchange="okx", channel="l2")
    assert overall.count == 2  # the wall-clock latency is still measured


def test_book_code_latency_runs_on_the_monotonic_clock():
    batches = flushed(exchange_ts_ms=WALL // MS, waited_ns=2 * MS)
    service = BookService("okx", "okx", keep_text=True, clock=lambda: WALL + STEP, mono=lambda: MONO + 5 * MS)
    service.on_batch("c0", batches)
    book = service.metrics.histogram(metrics.CODE_LATENCY, "okx", "l2@book")
    assert book.count == 1 and metrics.latency_ms(book)["p50"] == pytest.approx(7.0, rel=0.01)


def test_now_reads_both_clocks_into_a_receipt() -> None:
    import time

    from xtrader.clock import now

    wall, mono = time.time_ns(), time.perf_counter_ns()
    receipt = now()
    assert type(receipt) is Receipt and len(receipt) == 2
    assert wall <= receipt.wall_ns <= time.time_ns() and mono <= receipt.mono_ns <= time.perf_counter_ns()
    assert receipt == Receipt(receipt.wall_ns, receipt.mono_ns) and receipt.wall_ns != receipt.mono_ns
