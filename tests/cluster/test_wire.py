"""RecordBatches between real actors as Arrow IPC bytes (`actors._wire`): a batch and a slice an actor sends
arrive equal, dictionaries and field metadata included."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
import pytest

from actors import _wire
from xtrader.bench.feed import frames
from xtrader.clock import Receipt
from xtrader.venues import venue

pytestmark = pytest.mark.usefixtures("ray_session")


def test_batches_an_actor_sends_arrive_equal() -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Receiver:
        def take(self, tables: dict[str, pa.RecordBatch]) -> dict[str, bytes]:
            # what arrived, written back by this process's own Arrow (no reducer here)
            return {name: _wire.batch_to_ipc(batch) for name, batch in tables.items()}

    @ray.remote(num_cpus=0)
    class Sender:
        def __init__(self) -> None:
            _wire.install()

        def installed(self) -> bool:
            return _wire._installed

        def send(self, receiver: Any, tables: dict[str, pa.RecordBatch]) -> dict[str, bytes]:
            return ray.get(receiver.take.remote(tables))

    v = venue("binance_futures")
    out = v.columns()
    data, _ = frames(400)
    for frame in data:
        v.parse(frame, Receipt(time.time_ns(), time.perf_counter_ns()), out)
    batches = out.flush()
    assert batches.l2 is not None and batches.trades is not None
    tables = {"l2": batches.l2, "slice": batches.l2.slice(100, 37), "trades": batches.trades}
    sender, receiver = Sender.remote(), Receiver.remote()  # type: ignore[attr-defined]
    assert ray.get(sender.installed.remote())
    got = ray.get(sender.send.remote(receiver, tables), timeout=120)
    assert set(got) == set(tables)
    for name, batch in tables.items():
        back = pa.ipc.open_stream(got[name]).read_next_batch()
        assert back.equals(batch), name
        assert back.schema.equals(batch.schema, check_metadata=True), name
