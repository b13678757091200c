"""Issue 8: a capture's first batches must not pay the hot path's one-time costs (`xtrader.warmup`).

Before the fix, pyarrow imported pandas (about 300 modules) inside the first batch of every stage: the
connector's dedup, the order-book actor's sync, the sink's write. The stages run one after the other,
so the first rows of a capture reached the sink about 1 s late on an idle machine (`xtrader demo
--duration 20`: p99 945 ms). Checked as the mechanism, not as a time: in a fresh interpreter per
stage (as each actor's worker process), once its actor is constructed, its first batch imports no module.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.captures import REPO, capture_path
from xtrader.bookservice import BookService
from xtrader.venues import venue
from xtrader.verify import verify

#: one actor's worker: construct the actor, then feed it its first batch; print the modules that imported
WORKER = r"""
import json, pickle, sys, time
from xtrader.clock import Anchor, host_id

stage, venue, batches_file, root = sys.argv[1:5]
if stage == "connector":
    from actors.connector import ConnectorActor
    from xtrader.config import Pipeline
    from xtrader.plan import ConnectorSpec

    spec = ConnectorSpec(id="c", stream="s", venue=venue, url="wss://127.0.0.1:1/ws", ws_base="wss://127.0.0.1:1",
        rest_base="https://127.0.0.1:1", subscriptions=(), connection=0, replica=0, placement_group="",
        bundle_index=0, cpus=1.0)
    actor = ConnectorActor(spec, [], None, None, pipeline=Pipeline())
elif stage == "book":
    from actors.book import OrderBookActor

    actor = OrderBookActor("s", venue, [])
else:
    from actors.sink import SinkActor
    from xtrader.config import ParquetSink
    from xtrader.plan import SinkSpec

    actor = SinkActor(SinkSpec(id="sink/parquet", kind="parquet", config=ParquetSink(root=root), rotation=None,
        row_group_rows=1000, flush_interval_s=0, cpus=0))
with open(batches_file, "rb") as handle:
    connection, batches, l2_out = pickle.load(handle)
batches.anchor = Anchor(host_id(), time.time_ns(), time.perf_counter_ns())
before = set(sys.modules)
if stage == "connector":
    actor.dedup.filter("c", batches, time.monotonic_ns())
elif stage == "book":
    actor.service.on_batch(connection, batches)
else:
    actor.write("c#1", 0, {"l2": l2_out}, "", batches.anchor)
print(json.dumps(sorted(set(sys.modules) - before)))
if stage == "sink":
    actor.close()
"""


@pytest.fixture(scope="module")
def first_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first l2 batch of the OKX capture, and the book's output for it (what the sink gets)."""
    result = verify(capture_path("okx"))
    connection, batches = next((c, b) for c, b in result.batches if b.l2 is not None)
    v = venue("okx")
    out = BookService("okx", v.sync_kind, keep_text=v.keep_text, checksum=v.book_checksum).on_batch(connection, batches)
    path = tmp_path_factory.mktemp("warm") / "batches.pkl"
    path.write_bytes(pickle.dumps((connection, batches, out.l2)))
    return path


@pytest.mark.parametrize("stage", ["connector", "book", "sink"])
def test_an_actors_first_batch_imports_nothing(stage: str, first_batch: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", WORKER, stage, "okx", str(first_batch), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    imported = json.loads(run.stdout.strip().splitlines()[-1])
    assert imported == [], f"{stage}: {len(imported)} modules imported by the first batch, e.g. {imported[:8]}"
