"""`xtrader demo --chaos questdb_down_s=D@T,parquet_unwritable_s=D@T` (issue 10): storage outages injected into a
running capture (`SinkActor.outage`). Each is an `events` row (kind `chaos`) and counted in the summary's
`chaos`; the sink it hits keeps the data (QuestDB: the spill; Parquet: the write-ahead log) and writes it
once the outage is over, the other sink goes on: written == sent + rest for both sinks, no duplicate row."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from jobs.demo import demo_capture
from jobs.run import run
from tests.cluster.conftest import MIN_ROWS, UNTIL_TIMEOUT_S, assert_until_met
from tests.cluster.test_pipeline import ReceiverActor, assert_complete, read
from xtrader.chaos import parse_chaos
from xtrader.config import Capture
from xtrader.driver.until import StopWhen

pytestmark = pytest.mark.usefixtures("ray_session")

#: QuestDB down from 2 s to 6 s, then the Parquet tree unwritable from 8 s to 12 s (each sink's own outage)
SPEC = "questdb_down_s=4@2,parquet_unwritable_s=4@8"
#: every outage is over by then, with time to write what waited
SETTLED_S = 16.0


def test_storage_outages_keep_the_data_and_leave_the_other_sink_alone(tmp_path: Path) -> None:
    import ray

    repo = str(Path(__file__).resolve().parents[2])
    receiver = ray.remote(num_cpus=0)(ReceiverActor).remote(repo)
    try:
        conf = ray.get(receiver.conf.remote())
        data = demo_capture(
            str(tmp_path / "data"), symbols=2, rate=40.0, questdb=conf, venues=("binance", "okx")
        ).model_dump()
        # the test receiver parses in pure Python: fewer, larger batches
        data["pipeline"].update(batch_ms=250, batch_rows=5000)
        first_check: list[float] = []

        def outages_over(stats: dict[str, Any], totals: dict[str, Any]) -> bool:
            first_check[:1] = first_check[:1] or [time.monotonic()]
            return time.monotonic() - first_check[0] > SETTLED_S

        until = StopWhen(min_rows=MIN_ROWS, books_valid=True, check=outages_over)
        summary = run(Capture.model_validate(data), UNTIL_TIMEOUT_S, until=until, chaos=parse_chaos(SPEC))
        assert_until_met(summary)
        assert summary["chaos"]["questdb_down"] == 1 and summary["chaos"]["parquet_unwritable"] == 1, summary["chaos"]
        # both sinks have every row once: Parquet checked row by row, QuestDB by its counts and the receiver's
        assert_complete(summary, tmp_path / "data", sinks=("parquet", "questdb"))
        trades = [
            (r.symbols["exchange"], r.symbols["symbol"], r.fields["trade_id"])
            for r in ray.get(receiver.table.remote("trades"))
        ]
        assert sum(summary["tables"]["trades"][v]["sent"] for v in ("binance", "okx")) == len(trades)
        assert [key for key, n in Counter(trades).items() if n > 1] == []
        # each outage: a chaos row, and the sink it hit failing, then writing again (its own events rows)
        events = read(tmp_path / "data", "events")
        details = [str(d) for d in events.column("detail").to_pylist()]
        chaos = events.filter(pc.equal(events.column("kind").cast("string"), "chaos"))
        injected = [str(d) for d in chaos.column("detail").to_pylist()]
        assert any("questdb_down" in d for d in injected) and any("parquet_unwritable" in d for d in injected)
        assert any("parquet sink failing" in d and "Read-only" in d for d in details), details
        assert any("parquet sink writes again" in d for d in details), details
        quest_events = [str(r.fields.get("detail")) for r in ray.get(receiver.table.remote("events"))]
        assert any("questdb sink failing" in d for d in quest_events), quest_events
        assert any("questdb sink writes again" in d for d in quest_events), quest_events
    finally:
        ray.get(receiver.stop.remote())
        ray.kill(receiver)
