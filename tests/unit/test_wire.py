"""RecordBatches between actors as Arrow IPC bytes (`actors._wire`): what arrives is what was sent, a slice
carries only its own rows, and outside Ray nothing is registered."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from actors import _wire
from xtrader.bench.feed import frames
from xtrader.clock import Receipt
from xtrader.venues import venue


@pytest.fixture(scope="module")
def l2() -> pa.RecordBatch:
    """A real l2 wire batch: simulator frames (Binance USD-M depth + trades) through the parser."""
    v = venue("binance_futures")
    out = v.columns()
    data, _ = frames(400)
    for frame in data:
        v.parse(frame, Receipt(time.time_ns(), time.perf_counter_ns()), out)
    batch = out.flush().l2
    assert batch is not None and batch.num_rows > 300
    return batch


def test_a_batch_arrives_equal_with_its_schema_metadata_and_dictionaries(l2: pa.RecordBatch) -> None:
    back = _wire.batch_from_ipc(_wire.batch_to_ipc(l2))
    assert back.equals(l2)
    assert back.schema.equals(l2.schema, check_metadata=True)
    assert pa.types.is_dictionary(back.schema.field("symbol").type)
    assert back.column("symbol").to_pylist() == l2.column("symbol").to_pylist()
    assert back.column("price_text").null_count == l2.column("price_text").null_count  # Binance keeps no text


def test_a_slice_carries_only_its_own_rows(l2: pa.RecordBatch) -> None:
    part = l2.slice(100, 50)
    data = _wire.batch_to_ipc(part)
    back = _wire.batch_from_ipc(data)
    assert back.equals(part) and back.num_rows == 50
    assert len(data) < len(_wire.batch_to_ipc(l2)) / 3  # not the whole batch's buffers


def test_an_empty_batch_and_nulls_round_trip() -> None:
    schema = pa.schema([pa.field("seq", pa.int64()), pa.field("ts", pa.timestamp("ns", tz="UTC"))])
    empty = pa.RecordBatch.from_pylist([], schema=schema)
    assert _wire.batch_from_ipc(_wire.batch_to_ipc(empty)).equals(empty)
    nulls = pa.RecordBatch.from_pylist([{"seq": None, "ts": None}, {"seq": 3, "ts": 5}], schema=schema)
    assert _wire.batch_from_ipc(_wire.batch_to_ipc(nulls)).to_pylist() == nulls.to_pylist()


def test_outside_ray_install_registers_nothing() -> None:
    # a fresh interpreter: the suite's own session Ray (tests/cluster) may be up in this one
    code = (
        "import ray\n"
        "from actors import _wire\n"
        "_wire.install()\n"
        "assert not ray.is_initialized(), 'install() started Ray'\n"
        "assert not _wire._installed\n"
        "from ray._private import serialization\n"
        "import pyarrow as pa\n"
        "assert pa.RecordBatch not in serialization.pickle.CloudPickler.dispatch\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
