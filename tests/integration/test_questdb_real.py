"""QuestDBSink against a real QuestDB: write a batch, read it back through the HTTP `/exec` endpoint.

Runs only when XTRADER_QUESTDB_URL names a server, e.g.
`XTRADER_QUESTDB_URL=http://localhost:9000 pytest tests/integration/test_questdb_real.py`.
Each run writes to its own tables (random prefix) and drops them afterwards. The sink creates its tables
with DEDUP UPSERT KEYS (`xtrader.sinks.ddl`, QuestDB >= 8.1.1): the batch is sent twice and stored once.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from tests.integration import sink_batches
from xtrader import schema
from xtrader.sinks import ddl
from xtrader.sinks.questdb import QuestDBSink

URL = os.environ.get("XTRADER_QUESTDB_URL", "")
pytestmark = pytest.mark.skipif(
    not URL, reason="XTRADER_QUESTDB_URL is not set (e.g. http://localhost:9000): no real QuestDB to test against"
)


def query(http: httpx.Client, sql: str) -> dict[str, Any]:
    response = http.get("/exec", params={"query": sql})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def nanos(text: str) -> int:
    """QuestDB's ISO timestamp (micro or nano digits, trailing Z) -> epoch ns."""
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=URL, timeout=10) as client:
        yield client


@pytest.mark.parametrize("protocol_version", [1, 2])
def test_a_batch_written_by_the_sink_reads_back_from_questdb(
    http: httpx.Client, tmp_path: Path, protocol_version: int
) -> None:
    prefix = f"xt_test_{uuid.uuid4().hex[:8]}_"
    table = f"{prefix}trades"
    scheme = "https" if urlsplit(URL).scheme == "https" else "http"
    sink = QuestDBSink(
        f"{scheme}::addr={urlsplit(URL).netloc};", tmp_path, table_prefix=prefix, protocol_version=protocol_version
    )
    batch = sink_batches.trades(rows=5)
    try:
        sink.write("trades", batch)
        sink.write("trades", batch)  # at least once: a resend must not duplicate rows
        sink.close()
        assert sink.stats()["spill_depth"] == 0, sink.stats()["last_error"]
        assert sink.stats()["ddl_errors"] == 0, sink.stats()["last_error"]
        assert query(http, f"select dedup from tables() where table_name = '{table}'")["dataset"] == [[True]]
        keys = query(http, f"select \"column\" from table_columns('{table}') where upsertKey")["dataset"]
        assert {row[0] for row in keys} == {ddl.DESIGNATED, *ddl.KEYS["trades"]}

        deadline = time.monotonic() + 15  # WAL tables apply the commit asynchronously
        while True:
            try:
                count = query(http, f"select count() from '{table}'")["dataset"][0][0]
            except httpx.HTTPStatusError:
                count = 0
            if count == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert count == 5

        result = query(
            http,
            "select exchange, symbol, side, trade_id, price, size, timestamp, receive_ts"
            f" from '{table}' order by trade_id",
        )
        got = [dict(zip([c["name"] for c in result["columns"]], row, strict=True)) for row in result["dataset"]]
        types = {c["name"]: c["type"] for c in result["columns"]}
        assert types["exchange"] == types["symbol"] == types["side"] == "SYMBOL"
        sent = batch.cast(sink_batches.plain_schema(batch.schema)).to_pylist()
        for record, row in zip(sent, got, strict=True):
            assert (row["exchange"], row["symbol"], row["side"]) == (
                record["exchange"],
                record["symbol"],
                record["side"],
            )
            assert (row["trade_id"], row["price"], row["size"]) == (record["trade_id"], record["price"], record["size"])
            # a TIMESTAMP column keeps at least microseconds
            assert nanos(row["timestamp"]) // 1000 == record["exchange_ts"] // 1000
            assert nanos(row["receive_ts"]) // 1000 == record["receive_ts"] // 1000
    finally:
        for name in schema.TABLES:
            query(http, f"drop table if exists '{prefix}{name}'")
