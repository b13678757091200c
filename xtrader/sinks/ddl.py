"""The QuestDB tables, created at start with `DEDUP UPSERT KEYS`, so a batch sent twice is stored once.

The sink sends at least once: a request that timed out after QuestDB committed
it, and a spilled batch whose replay was committed just before a crash (the
spill file is deleted after QuestDB's answer), are sent again. Upsert keys make
that harmless: a row whose keys match a stored row replaces it (QuestDB
compares the whole row and skips identical ones).

Each table is a WAL table partitioned by day, its designated timestamp named
`timestamp` (as QuestDB names it when ILP creates a table; `xtrader.sinks.ilp`
fills it), every stored column typed as the ILP client sends it (SYMBOL for
dictionary columns, VARCHAR strings; VARCHAR keys need QuestDB >= 8.1.1). The
keys are a row's identity, never less (which would merge distinct rows):

- trades: `timestamp, exchange, symbol, trade_id` - the venue's trade id is
  unique per instrument;
- l2: `timestamp, exchange, symbol, seq, side, price, is_snapshot` - one
  message (seq) has one level per side and price; a snapshot and an update
  may share a seq;
- bbo: `timestamp, exchange, symbol, seq, bid_price, bid_size, ask_price,
  ask_size` - the whole quote (seq is null on some venues: two quotes at the
  same time differ in their prices, or are the same quote sent twice);
- events: `timestamp, exchange, symbol, kind, detail` - the whole event;
- book_snapshots: `timestamp, exchange, symbol, level` - one row per level
  per sample.

`statements(prefix)` gives, per table, `CREATE TABLE IF NOT EXISTS ...` and
`ALTER TABLE ... DEDUP ENABLE UPSERT KEYS(...)` (for a table an older xtrader
let ILP create without keys). `Exec` sends them to QuestDB's HTTP `/exec`.
"""

from __future__ import annotations

import httpx
import pyarrow as pa

from xtrader import schema

#: the designated timestamp's column (QuestDB's name for it in tables ILP creates)
DESIGNATED = "timestamp"

#: each table's upsert keys besides the designated timestamp (see the module doc)
KEYS: dict[str, tuple[str, ...]] = {
    "trades": ("exchange", "symbol", "trade_id"),
    "l2": ("exchange", "symbol", "seq", "side", "price", "is_snapshot"),
    "bbo": ("exchange", "symbol", "seq", "bid_price", "bid_size", "ask_price", "ask_size"),
    "events": ("exchange", "symbol", "kind", "detail"),
    "book_snapshots": ("exchange", "symbol", "level"),
}


def sql_type(type_: pa.DataType) -> str:
    """The QuestDB column type of an Arrow column, as the ILP client sends it."""
    if pa.types.is_dictionary(type_):
        return "SYMBOL"
    if pa.types.is_timestamp(type_):
        return "TIMESTAMP"
    if pa.types.is_floating(type_):
        return "DOUBLE"
    if pa.types.is_integer(type_):
        return "LONG"
    if pa.types.is_boolean(type_):
        return "BOOLEAN"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "VARCHAR"
    raise ValueError(f"no QuestDB type for {type_}")


def statements(table: str, name: str) -> list[str]:
    """The DDL of stored table `table` as QuestDB table `name`: create it, then make sure its keys are set."""
    columns = ", ".join([f"{DESIGNATED} TIMESTAMP", *(f"{f.name} {sql_type(f.type)}" for f in schema.TABLES[table])])
    keys = ", ".join((DESIGNATED, *KEYS[table]))
    return [
        f'CREATE TABLE IF NOT EXISTS "{name}" ({columns}) TIMESTAMP({DESIGNATED}) PARTITION BY DAY WAL'
        f" DEDUP UPSERT KEYS({keys})",
        f'ALTER TABLE "{name}" DEDUP ENABLE UPSERT KEYS({keys})',
    ]


class DDLError(Exception):
    """QuestDB refused a statement (its answer in the message)."""


class Exec:
    """QuestDB's HTTP `/exec` at the address of an ILP/HTTP client configuration.

    Takes `addr`, `username` / `password` (basic auth), `token` (bearer), `tls_verify=unsafe_off`
    and `tls_roots` from the configuration, like the ILP client.
    """

    def __init__(self, conf: str, timeout_s: float = 10.0) -> None:
        scheme, _, rest = conf.partition("::")
        keys = dict(item.split("=", 1) for item in rest.split(";") if "=" in item)
        headers = {"Authorization": f"Bearer {keys['token']}"} if "token" in keys else {}
        auth = (keys["username"], keys.get("password", "")) if "username" in keys else None
        verify: bool | str = keys.get("tls_roots", True)
        if keys.get("tls_verify") == "unsafe_off":
            verify = False
        self.client = httpx.Client(
            base_url=f"{scheme}://{keys['addr']}", headers=headers, auth=auth, verify=verify, timeout=timeout_s
        )

    def run(self, query: str) -> None:
        """Run one statement.

        Raises:
            httpx.HTTPError: QuestDB could not be reached (try again later).
            DDLError: QuestDB answered with an error.
        """
        response = self.client.get("/exec", params={"query": query})
        if response.status_code != 200:
            try:
                detail = response.json().get("error", response.text)
            except ValueError:
                detail = response.text
            raise DDLError(f"QuestDB refused {query!r}: HTTP {response.status_code}: {detail}")

    def close(self) -> None:
        self.client.close()
