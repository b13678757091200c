"""The capture configuration: frozen pydantic models, validated as a whole before any actor starts.

A `Capture` names the streams to record (venue, tables, symbols, redundancy),
the pipeline settings (batching, flow control, placement, book sync, arbiter,
reconnects), the sinks, the Ray cluster, the metrics endpoint and an optional
local simulator. Endpoints left at None mean the venue's official live
endpoint, so the only difference between a simulated and a live capture is
`simulator.enabled`.

`load_config` reads YAML or JSON; environment variables (XTRADER_<NAME>, see
`ENV_OVERRIDES`, and the seed's aliases in `ENV_ALIASES`) beat the file and
command-line values beat both. docs/config.md
is generated from these models (`python -m xtrader.docs config`).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from xtrader.errors import ConfigError
from xtrader.redact import ConfString
from xtrader.venues.base import Subscription, Table

LatencyMode = Literal["realtime", "archival"]
#: the Parquet sink's write-ahead log (`ParquetSink.wal`)
WalMode = Literal["os", "batch", "off"]
Policy = Literal["block", "lossy"]
#: the connectors' websocket library (`xtrader.transport`)
Transport = Literal["picows", "websockets"]
PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_SPREAD"]
BookSource = Literal["auto", "ws", "rest"]
OptionValue = bool | int | float | str

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Symbol = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,63}$")]
Channel = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
WsBase = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^wss?://\S+$")]
RestBase = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^https?://\S+$")]
#: a listener's bind address: an IP address or a host name (checked by `_listen_address`)
ListenHost = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]
Port = Annotated[int, Field(ge=0, le=65535)]

#: Values the latency mode sets for every preset field the configuration leaves out
#: (the field defaults are the realtime values). realtime: the age bound (batch_ms) caps how long a row
#: waits; batch_rows only caps a batch at rates where 20 ms hold more rows, where each actor call's fixed
#: cost wants many rows (2,000 rather than 500: 1.4-1.7x the msgs per CPU-s end to end, RESULTS.md).
PRESETS: dict[str, dict[str, int | float]] = {
    "realtime": {"batch_rows": 2_000, "batch_ms": 20, "flush_interval_s": 1.0, "row_group_rows": 65_536},
    "archival": {"batch_rows": 10_000, "batch_ms": 1_000, "flush_interval_s": 30.0, "row_group_rows": 1_048_576},
}
#: What `pipeline.fused` changes in a preset. realtime: batches of up to 10,000 rows. The 20 ms bound still
#: flushes first at 10,000 msg/s (p99 / p999 25.0-25.9 / 26.8-28.5 ms against 25.4-25.8 / 28.8-28.9 with 2,000),
#: and a busy process pays each batch's fixed cost (the column flush, the book's runs, the sink's bookkeeping)
#: 5x less often: 192.7k against 157.9k msgs per CPU-s (benchmarks/RESULTS.md). The actor layout keeps 2,000:
#: there 8,000 worsened the tail (a catch-up batch after a stall, RESULTS.md).
FUSED_PRESETS: dict[str, dict[str, int | float]] = {"realtime": {"batch_rows": 10_000}, "archival": {}}

#: Parquet file rotation per latency mode (rows, bytes, seconds): realtime closes small files often.
ROTATION_PRESETS: dict[str, dict[str, int | float]] = {
    "realtime": {"rotation_rows": 1_000_000, "rotation_bytes": 64 * 2**20, "rotation_seconds": 60.0},
    "archival": {"rotation_rows": 50_000_000, "rotation_bytes": 2**30, "rotation_seconds": 3600.0},
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _listen_address(value: str) -> str:
    """`value` when it is an IP address (v4 or v6) or a host name (RFC 1123 labels), else ValueError."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    if not labels[-1].isdigit() and all(_HOST_LABEL.match(label) for label in labels):
        return value
    raise ValueError(
        f"{value!r} is not an IP address or a host name (127.0.0.1 keeps the listener local; "
        "0.0.0.0 or :: exposes it on every interface)"
    )


class Stream(_Model):
    """One venue's subscriptions: the same tables for every symbol, captured over `redundancy` copies."""

    name: Name | None = Field(
        default=None, description="Stream id used in actor names and metrics; null: the venue name."
    )
    venue: str = Field(description="Venue name: binance, binance_futures (USD-M), okx or deribit.")
    tables: tuple[Table, ...] = Field(
        default=("trades", "l2", "bbo"), description="Tables to capture: any of trades, l2, bbo."
    )
    symbols: tuple[Symbol, ...] = Field(
        description="Venue-native instrument ids (BTCUSDT, BTC-USDT, BTC-USDT-SWAP, BTC-PERPETUAL)."
    )
    channels: dict[Table, Channel] = Field(
        default_factory=dict,
        description="Venue channel per table replacing the venue default (e.g. l2: depth@0ms, books-l2-tbt, 100ms).",
    )
    redundancy: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Identical connections per stream; above 1 an arbiter keeps the first arrival.",
    )
    ws_base: WsBase | None = Field(
        default=None, description="Websocket base URL; null: the official endpoint (or the simulator's)."
    )
    rest_base: RestBase | None = Field(
        default=None, description="REST base URL; null: the official endpoint (or the simulator's)."
    )
    simulated: bool | None = Field(
        default=None,
        description="Connect to the local simulator; null: when `simulator.enabled`; false: live even then.",
    )
    book_source: BookSource | None = Field(
        default=None,
        description="Where l2 books start (okx): auto (a websocket snapshot when one comes within "
        "ws_snapshot_wait_s of the subscribe ack, else the REST book bridged by seqId), ws (websocket snapshots "
        "only, resync by resubscribing) or rest (the REST book at the first update, resync by REST); "
        "null: the venue's default (okx: auto; binance: rest; deribit: ws).",
    )
    ws_snapshot_wait_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="book_source auto: seconds after the subscribe ack to wait for a websocket snapshot.",
    )
    snapshot_depth: int | None = Field(
        default=None,
        ge=1,
        le=5000,
        description="Levels per side of a REST book snapshot (binance: limit, capped at 5000 spot / 1000 USD-M; "
        "okx: sz, capped at 400). null: the venue's default, chosen by request weight (binance spot 1000 levels, "
        "weight 50 of the IP's 6000 per minute, rather than 5000 at weight 250).",
    )

    @field_validator("venue")
    @classmethod
    def _known_venue(cls, value: str) -> str:
        from xtrader.venues import venue

        try:
            venue(value)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return value

    @field_validator("tables", "symbols")
    @classmethod
    def _some_and_no_repeats(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if not values:
            raise ValueError("must list at least one")
        repeated = sorted(value for value, count in Counter(values).items() if count > 1)
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(map(repr, repeated))}")
        return values

    @model_validator(mode="after")
    def _channels_of_captured_tables(self) -> Stream:
        extra = sorted(set(self.channels) - set(self.tables))
        if extra:
            raise ValueError(f"channels: override for {', '.join(map(repr, extra))}, which is not in tables")
        return self

    @model_validator(mode="after")
    def _public_channels_and_book_source(self) -> Stream:
        from xtrader.venues import venue

        instance = venue(self.venue)
        for subscription in self.subscriptions():
            reason = instance.login_required(subscription)
            if reason is not None:
                raise ValueError(
                    f"stream {self.id!r}: {reason}; this client does not log in (channels.{subscription.table})"
                )
        sources = self.book_sources()
        if self.book_source is not None and self.book_source not in sources:
            raise ValueError(
                f"book_source {self.book_source!r}: {self.venue} books come only from {' or '.join(sources)}"
            )
        return self

    def book_sources(self) -> tuple[str, ...]:
        """The book sources the venue supports, its default first."""
        from xtrader.venues import venue

        instance = venue(self.venue)
        return instance.book_sources or (("rest",) if instance.needs_snapshot else ("ws",))

    def resolved_book_source(self) -> str:
        """`book_source`, or the venue's default."""
        return self.book_source or self.book_sources()[0]

    @property
    def id(self) -> str:
        """The stream id: `name`, or the venue name."""
        return self.name or self.venue

    def subscriptions(self) -> list[Subscription]:
        """One subscription per (table, symbol), in configuration order."""
        return [
            Subscription(table, symbol, self.channels.get(table)) for table in self.tables for symbol in self.symbols
        ]


class Pipeline(_Model):
    """Batching, flow control, placement, book sync, arbiter and reconnect settings (env: XTRADER_<NAME>)."""

    latency_mode: LatencyMode = Field(
        default="realtime",
        description="Preset for the batch_rows, batch_ms, flush_interval_s and row_group_rows left out.",
    )
    batch_rows: int = Field(default=2_000, ge=1, le=1_000_000, description="Rows per batch.")
    batch_ms: int = Field(
        default=20,
        ge=1,
        le=60_000,
        description="Longest a row waits for its batch, ms, while the downstream keeps up. While max_inflight "
        "of a connector's calls wait unanswered at a sink, book or arbiter, a batch grows instead, up to "
        "batch_rows or 100 x batch_ms (10 x while another of its sinks or its book keeps up): fewer, bigger "
        "calls rather than a queue of small ones.",
    )
    flush_interval_s: float = Field(default=1.0, gt=0, le=3600, description="Longest a sink holds rows before writing.")
    row_group_rows: int = Field(default=65_536, ge=1_000, le=64_000_000, description="Parquet row-group size, rows.")
    max_inflight: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Batches a connector without an arbiter may have waiting for slots in its book's and sinks' "
        "windows, and writes the order-book actor may have waiting for its sinks' windows (twice this). The windows "
        "themselves: window_rows (to a book or arbiter) and sink_max_inflight (to each sink). From this many "
        "unanswered calls on, a connector's batches grow past batch_ms (see batch_ms).",
    )
    sink_max_inflight: int = Field(
        default=256,
        ge=1,
        le=65_536,
        description="Writes a producer may have unacknowledged at EACH sink: a slow sink holds the producer "
        "back (block) or drops its own copies (lossy) only once its own window is full; the other sinks go on.",
    )
    window_rows: int = Field(
        default=500_000,
        ge=1,
        le=100_000_000,
        description="Rows a connector may have waiting downstream: its l2 at the order-book actor (redundancy 1), or "
        "its batches for the arbiter's answer (redundancy 2+). While the book or arbiter restarts or lags, the "
        "connection goes on reading; once this many rows (or 1,024 calls) wait, it holds back (block) or drops them "
        "(lossy).",
    )
    policy: Policy = Field(
        default="block",
        description="When max_inflight is reached: block (lossless) or lossy (drop the batch and count it).",
    )
    connector_cpus: float = Field(
        default=1.0, gt=0, le=64, description="CPUs of each connector's placement-group bundle."
    )
    service_cpus: float = Field(
        default=0.0, ge=0, le=64, description="CPUs reserved per arbiter, order-book and sink actor."
    )
    fused: bool = Field(
        default=False,
        description="Run the whole capture (its connectors, arbiters, order books and sinks) in one actor process "
        "of connector_cpus CPUs, the stages calling each other in process instead of through Ray: 1.4-2.3x the "
        "messages per CPU-second (benchmarks/RESULTS.md), for a capture one CPU can carry. Its realtime preset "
        "batches up to 10,000 rows. One failure domain: a "
        "crash restarts every stage together. Streams added at run time get actors of their own.",
    )
    placement_strategy: PlacementStrategy = Field(
        default="PACK",
        description="Placement of the redundant copies of a connection; STRICT_SPREAD needs `redundancy` nodes.",
    )
    snapshot_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="Period of book_snapshots rows per book."
    )
    book_snapshot_depth: int = Field(default=20, ge=1, le=1000, description="Levels per side in book_snapshots.")
    book_gap_hold_s: float = Field(
        default=3.0,
        ge=0,
        le=60,
        description="With redundancy 2+, how long a book waits for an update missing before the next one "
        "before it resyncs: the other connection may still deliver it (one that has just reconnected starts "
        "at the newest updates, maybe ahead of its partner's last ones). Rows are written meanwhile; the book "
        "emits no book_snapshots rows while it waits. 0: resync at once.",
    )
    arbiter_capacity: int = Field(
        default=200_000, ge=1_000, description="Update keys an arbiter remembers per table (LRU)."
    )
    arbiter_ttl_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds an arbiter remembers an update key, plus how far its slowest connection is behind "
        "its fastest (exchange time), so the late copies of a connection with a backlog are still found.",
    )
    rotation_interval_s: float = Field(
        default=0.0,
        ge=0,
        description="Every this many seconds replace the redundant connection winning least; 0: never.",
    )
    rotation_min_win_share: float = Field(
        default=0.1, ge=0, le=1, description="Rotate a connection only when its share of wins is below this."
    )
    reconnect_backoff_base_s: float = Field(
        default=0.5, gt=0, le=60, description="First reconnect delay (then doubled)."
    )
    reconnect_backoff_cap_s: float = Field(
        default=30.0, gt=0, le=3600, description="Longest reconnect delay (jittered)."
    )
    reconnect_backoff_reset_s: float = Field(
        default=10.0,
        ge=0,
        le=86_400,
        description="The reconnect delay starts over from the base only after a link stayed up (with data) this "
        "long; a link dying sooner (e.g. closed after one frame) keeps the delays growing.",
    )
    connection_lifetime_s: float = Field(
        default=84_600.0,
        ge=0,
        description="Replace a connection (new one first) after this long; Binance closes them at 24 h. 0: never.",
    )
    max_frame_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1 << 30,
        description="Largest websocket frame a connector accepts; a bigger one is dropped, counted "
        "(oversized_frames), recorded as a reject event, and its connection replaced.",
    )
    ws_transport: Transport = Field(
        default="picows",
        description="The connectors' websocket library: picows (frames parsed in C; 1.2-1.9 against 5.3-6.8 µs of CPU "
        "a frame on the bench feed) or websockets (pure Python, the fallback). Both pass the same connector tests.",
    )
    validate_symbols: bool = Field(
        default=True, description="Check symbols against the venue's instrument list at start."
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        mode = data.get("latency_mode", "realtime")
        preset = PRESETS.get(mode) if isinstance(mode, str) else None
        if preset is None:
            return data  # the latency_mode field reports it
        if _is_true(data.get("fused")):
            preset = {**preset, **FUSED_PRESETS[mode]}
        explicit = {key: value for key, value in data.items() if not (key in preset and value is None)}
        return {**preset, **explicit}

    @model_validator(mode="after")
    def _backoff_order(self) -> Pipeline:
        if self.reconnect_backoff_cap_s < self.reconnect_backoff_base_s:
            raise ValueError(
                f"reconnect_backoff_cap_s={self.reconnect_backoff_cap_s:g} is below "
                f"reconnect_backoff_base_s={self.reconnect_backoff_base_s:g}"
            )
        return self


_BOOL = TypeAdapter(bool)


def _is_true(value: Any) -> bool:
    """`value` as the bool field would read it (False when it would not: the field then reports it)."""
    try:
        return bool(_BOOL.validate_python(value)) if value is not None else False
    except ValidationError:
        return False


class Rotation(NamedTuple):
    """When a Parquet writer closes its file and starts the next (whichever comes first)."""

    rows: int
    bytes: int
    seconds: float


class ParquetSink(_Model):
    """Hive-partitioned Parquet files: ROOT/<table>/exchange=<x>/date=<YYYY-MM-DD>/part-<writer>-<n>.parquet."""

    enabled: bool = Field(default=True, description="Write Parquet.")
    root: str = Field(default="./xtrader-data", min_length=1, description="Dataset root directory.")
    mode: LatencyMode | None = Field(
        default=None, description="realtime (small files, frequent close) or archival; null: pipeline.latency_mode."
    )
    compression: Literal["zstd", "snappy", "lz4", "none"] = Field(
        default="zstd", description="Parquet compression codec."
    )
    wal_dir: str | None = Field(
        default=None,
        min_length=1,
        description="Directory of the write-ahead logs (one per writer); null: ROOT/.wal. On another volume than "
        "root, a full or read-only Parquet disk keeps the data in the log until writing works again.",
    )
    wal: WalMode = Field(
        default="os",
        description="When a batch is acknowledged: os (once written to the write-ahead log in the kernel, which "
        "survives the sink process's death; the log is fsync'd every pipeline.flush_interval_s), batch (fsync'd "
        "before each acknowledgement: survives a power loss too, at about 3 ms per batch) or off (once in memory: "
        "rows not yet in a closed file are lost with the sink; for measuring what the log costs, "
        "benchmarks/RESULTS.md).",
    )
    rotation_rows: int | None = Field(
        default=None, ge=1, description="Close a file at this many rows; null: mode preset."
    )
    rotation_bytes: int | None = Field(
        default=None, ge=1024, description="Close a file at about this many bytes; null: mode preset."
    )
    rotation_seconds: float | None = Field(
        default=None, gt=0, description="Close a file this long after opening; null: mode preset."
    )

    def rotation(self, latency_mode: LatencyMode) -> Rotation:
        """The rotation thresholds, presets filled in from `mode` (or the pipeline's `latency_mode`)."""
        preset = ROTATION_PRESETS[self.mode or latency_mode]
        return Rotation(
            rows=int(self.rotation_rows or preset["rotation_rows"]),
            bytes=int(self.rotation_bytes or preset["rotation_bytes"]),
            seconds=float(self.rotation_seconds or preset["rotation_seconds"]),
        )


class QuestDBSink(_Model):
    """QuestDB through the official client (ILP over HTTP), with a local spill while it is unreachable."""

    enabled: bool = Field(default=False, description="Write to QuestDB.")
    conf: ConfString = Field(
        default=ConfString("http::addr=localhost:9000;protocol_version=1;"),
        description="questdb client configuration string (`http::addr=HOST:PORT;protocol_version=1;`); its "
        "credentials (password, token) never show in logs, errors or dumps (`***`).",
    )
    spill_dir: str = Field(
        default="./xtrader-spill", min_length=1, description="Batches wait here (Parquet) while QuestDB is down."
    )

    def __init__(self, **data: Any) -> None:
        """As any model's; declared so that `conf` may be given as a plain string (it becomes a ConfString)."""
        super().__init__(**data)

    @field_validator("conf")
    @classmethod
    def _conf_shape(cls, value: ConfString) -> ConfString:
        schema, sep, rest = value.get_secret_value().partition("::")
        if not sep or schema not in ("http", "https", "tcp", "tcps"):
            raise ValueError("must start with http::, https::, tcp:: or tcps::")
        if "addr=" not in rest:
            raise ValueError("must name the server: addr=HOST:PORT;")
        return value


class Sinks(_Model):
    """Where rows are written; at least one sink must be enabled."""

    parquet: ParquetSink = Field(default=ParquetSink(), description="Parquet archive.")
    questdb: QuestDBSink = Field(default=QuestDBSink(), description="QuestDB for live queries.")


class Cluster(_Model):
    """The Ray cluster the capture runs on."""

    address: str | None = Field(
        default=None,
        description="Ray address: null starts a local Ray; `auto` joins the running cluster; or `ray://HOST:PORT`.",
    )
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local Ray; null: the machine's.")
    namespace: Name = Field(default="xtrader", description="Ray namespace of the named actors.")
    placement_timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds to wait for placement groups before reporting them unsatisfiable."
    )


class Metrics(_Model):
    """Prometheus endpoint, optional StatsD push and live table of the driver."""

    enabled: bool = Field(default=True, description="Serve Prometheus /metrics.")
    host: ListenHost = Field(
        default="127.0.0.1", description="Bind address of /metrics; 0.0.0.0 exposes it to the network."
    )
    port: Port = Field(default=9188, description="Port of /metrics; 0: any free port.")
    interval_s: float = Field(default=1.0, gt=0, le=60, description="Seconds between stats aggregations.")
    live_table: bool = Field(default=True, description="Show a live table when attached to a terminal.")
    log_interval_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Seconds between progress lines (`xtrader-metrics: {json}`) on stdout when it is not a "
        "terminal, e.g. under `ray job submit` (`ray job logs` shows them); 0: none.",
    )
    statsd: str | None = Field(
        default=None,
        description="`host:port` of a StatsD server to push the same metrics to every interval_s (UDP); null: off.",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _listen_address(value)

    @field_validator("statsd")
    @classmethod
    def _statsd_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from xtrader.statsd_export import parse_address

        parse_address(value)  # ValueError says what is expected
        return value.strip()


class Simulator(_Model):
    """A local exchange simulator started by the driver (real websocket and REST servers on loopback)."""

    enabled: bool = Field(default=True, description="Start the simulator; false: streams go to the live venues.")
    host: ListenHost = Field(
        default="127.0.0.1", description="Bind address of the simulator; 0.0.0.0 exposes it to the network."
    )
    port: Port = Field(
        default=0,
        description="First port; each venue (all four are served, whatever the streams) takes two in a row "
        "(plain, TLS); 0: any free ports.",
    )
    symbols: int = Field(
        default=3, ge=1, le=10_000, description="Instruments generated per venue (BTC, ETH, SOL, ...)."
    )
    rate: float = Field(default=100.0, gt=0, le=1_000_000, description="Market updates per second per venue.")
    depth: int = Field(default=200, ge=1, le=10_000, description="Book levels per side.")
    seed: int = Field(default=1, description="Random seed: the same seed generates the same markets.")
    faults: str = Field(
        default="", description="Fault switches, `name=value,...` (e.g. drop_rate=0.01,disconnect_after_s=5)."
    )
    replay: tuple[str, ...] = Field(
        default=(), description="Capture files (.jsonl) to replay instead of generating, for the venues they hold."
    )
    speed: float | None = Field(
        default=None, gt=0, description="Replay speed factor (1: real time); null: as fast as possible."
    )
    tls: bool = Field(default=False, description="Serve wss:// and https:// (with a throwaway CA) instead of ws/http.")
    options: dict[str, dict[str, OptionValue]] = Field(
        default_factory=dict,
        description="Venue-specific simulator options by venue, e.g. {okx: {initial_snapshot: 0}} "
        "(`xtrader simulate --help` and the simulator's README list them).",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _listen_address(value)

    @field_validator("faults")
    @classmethod
    def _faults_parse(cls, value: str) -> str:
        from xtrader.simulator.faults import parse_faults

        parse_faults(value)  # ValueError names the switch
        return value

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, dict[str, OptionValue]]) -> dict[str, dict[str, OptionValue]]:
        from xtrader.simulator import registry

        for name, options in value.items():
            if name not in registry.VENUES:
                raise ValueError(f"unknown venue {name!r} (simulated: {', '.join(registry.VENUES)})")
            known = registry.venue_class(name).settings_help
            unknown = sorted(set(options) - set(known))
            if unknown:
                raise ValueError(f"venue {name!r} has no option {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return value


class Capture(_Model):
    """A whole capture: streams, pipeline, sinks, cluster, metrics and an optional simulator."""

    name: Name = Field(default="xtrader", description="Capture name (actor names, summary).")
    streams: tuple[Stream, ...] = Field(description="What to capture (at least one stream).")
    pipeline: Pipeline = Field(default=Pipeline(), description="Pipeline settings.")
    sinks: Sinks = Field(default=Sinks(), description="Where rows go.")
    cluster: Cluster = Field(default=Cluster(), description="Ray cluster.")
    metrics: Metrics = Field(default=Metrics(), description="Metrics endpoint.")
    simulator: Simulator | None = Field(default=None, description="Local exchange simulator; null: none.")

    @field_validator("streams")
    @classmethod
    def _some_streams(cls, streams: tuple[Stream, ...]) -> tuple[Stream, ...]:
        if not streams:
            raise ValueError("must list at least one stream")
        return streams

    @model_validator(mode="after")
    def _whole_plan(self) -> Capture:
        _check_unique_streams(self.streams)
        _check_unique_subscriptions(self.streams)
        simulator_on = self.simulator is not None and self.simulator.enabled
        for index, stream in enumerate(self.streams):
            if stream.simulated and not simulator_on:
                raise ValueError(f"streams[{index}].simulated: true, but the simulator is not enabled")
        if not (self.sinks.parquet.enabled or self.sinks.questdb.enabled):
            raise ValueError("sinks: no sink is enabled (set sinks.parquet.enabled or sinks.questdb.enabled)")
        return self

    def is_simulated(self, stream: Stream) -> bool:
        """True when `stream` connects to the local simulator."""
        simulator_on = self.simulator is not None and self.simulator.enabled
        return simulator_on if stream.simulated is None else stream.simulated


def _check_unique_streams(streams: tuple[Stream, ...]) -> None:
    first: dict[str, int] = {}
    for index, stream in enumerate(streams):
        if stream.id in first:
            raise ValueError(
                f"streams[{index}].name: duplicate stream id {stream.id!r} (also streams[{first[stream.id]}]); "
                "give each stream of one venue a distinct name"
            )
        first[stream.id] = index


def _check_unique_subscriptions(streams: tuple[Stream, ...]) -> None:
    owner: dict[tuple[str, str, str], int] = {}
    for index, stream in enumerate(streams):
        for table in stream.tables:
            for symbol in stream.symbols:
                key = (stream.venue, table, symbol)
                if key in owner:
                    raise ValueError(
                        f"streams[{index}].symbols: {stream.venue} {table} {symbol!r} is already captured by "
                        f"streams[{owner[key]}]; use redundancy for duplicate connections"
                    )
                owner[key] = index


#: Every configuration model, in documentation order, with its path in a Capture.
MODELS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("", Capture),
    ("streams[]", Stream),
    ("pipeline", Pipeline),
    ("sinks", Sinks),
    ("sinks.parquet", ParquetSink),
    ("sinks.questdb", QuestDBSink),
    ("cluster", Cluster),
    ("metrics", Metrics),
    ("simulator", Simulator),
)


# -- where values come from: file < environment < command line ---------------------------------

#: Environment variables beyond the pipeline's own XTRADER_<FIELD>: name -> path in the capture.
_EXTRA_ENV: dict[str, tuple[str, ...]] = {
    "XTRADER_PARQUET_ROOT": ("sinks", "parquet", "root"),
    "XTRADER_QUESTDB_ENABLED": ("sinks", "questdb", "enabled"),
    "XTRADER_QUESTDB_CONF": ("sinks", "questdb", "conf"),
    "XTRADER_METRICS_HOST": ("metrics", "host"),
    "XTRADER_METRICS_PORT": ("metrics", "port"),
    "XTRADER_METRICS_STATSD": ("metrics", "statsd"),
    "XTRADER_METRICS_LOG_INTERVAL_S": ("metrics", "log_interval_s"),
    "XTRADER_CLUSTER_ADDRESS": ("cluster", "address"),
    "XTRADER_PLACEMENT_TIMEOUT_S": ("cluster", "placement_timeout_s"),
}

#: Every environment override: variable name -> path of the field it sets.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    **{f"XTRADER_{name.upper()}": ("pipeline", name) for name in Pipeline.model_fields},
    **_EXTRA_ENV,
}


class EnvAlias(NamedTuple):
    """A second name for an environment override, in the seed's spelling, with its own unit or meaning."""

    canonical: str  # the XTRADER_<FIELD> variable it stands for
    meaning: str  # how its value becomes the field's (documented in docs/config.md)


#: Documented aliases: variable -> the canonical variable it stands for. Setting both to different
#: values is an error naming both.
ENV_ALIASES: dict[str, EnvAlias] = {
    "XTRADER_SINK_FLUSH_MS": EnvAlias("XTRADER_FLUSH_INTERVAL_S", "milliseconds: 250 sets flush_interval_s 0.25"),
    "XTRADER_SINK_BATCH": EnvAlias("XTRADER_BATCH_ROWS", "rows per batch, as XTRADER_BATCH_ROWS"),
    "XTRADER_SINK_LOSSY": EnvAlias(
        "XTRADER_POLICY", "true (1, yes, on) sets policy lossy; false (0, no, off) sets policy block"
    ),
}

_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def _alias_value(alias: str, raw: str) -> object:
    """The canonical field's value for an alias's raw value (the raw value itself when it cannot be read,
    so that validation reports it against the field like any other environment value).

    Raises:
        ValueError: XTRADER_SINK_LOSSY that is not a boolean.
    """
    text = raw.strip()
    if alias == "XTRADER_SINK_FLUSH_MS":
        try:
            return float(text) / 1000.0
        except ValueError:
            return raw
    if alias == "XTRADER_SINK_LOSSY":
        if text.lower() in _TRUE:
            return "lossy"
        if text.lower() in _FALSE:
            return "block"
        raise ValueError("must be true or false (1/0, yes/no, on/off)")
    return raw


def _same(a: object, b: object) -> bool:
    """True when two environment values mean the same field value (250 ms as 0.25 s; `lossy` as `lossy`)."""
    if a == b:
        return True
    try:
        return float(str(a).strip()) == float(str(b).strip())
    except ValueError:
        return str(a).strip() == str(b).strip()


def env_var(path: tuple[str, ...]) -> str | None:
    """The environment variable overriding the field at `path`, or None."""
    return next((name for name, target in ENV_OVERRIDES.items() if target == path), None)


def load_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> Capture:
    """Read a capture from YAML (.yaml, .yml) or JSON (.json), then apply environment and CLI overrides.

    Args:
        path: the configuration file.
        environ: environment to read XTRADER_* overrides from (default: os.environ).
        overrides: command-line values by dotted path (`pipeline.policy`, `sinks.parquet.root`; a bare pipeline
            field name such as `policy` means `pipeline.policy`); they beat the environment, which beats the file.

    Raises:
        ConfigError: unreadable file, malformed YAML/JSON, or an invalid value (the message names the field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of capture fields, not {type(data).__name__}")
    return parse_config(data, environ=environ, overrides=overrides, source=str(path))


def parse_config(
    data: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    source: str = "configuration",
) -> Capture:
    """Validate a capture given as plain data, applying environment and CLI overrides (see `load_config`).

    Raises:
        ConfigError: an invalid value; the message names the field, the value and where it came from.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(data))
    origins: dict[tuple[str, ...], str] = {}
    env = os.environ if environ is None else environ
    problems: list[str] = []
    for name, target in ENV_OVERRIDES.items():
        value = env.get(name)
        if value is not None:
            _set(merged, target, value)
            origins[target] = f"environment {name}"
    for alias, (canonical, _meaning) in ENV_ALIASES.items():
        raw = env.get(alias)
        if raw is None:
            continue
        target = ENV_OVERRIDES[canonical]
        where = ".".join(target)
        try:
            converted = _alias_value(alias, raw)
        except ValueError as exc:
            problems.append(f"{where}: {exc} (got {_short(raw)}) [from environment {alias}]")
            continue
        if canonical in env:
            if not _same(converted, env[canonical]):
                problems.append(
                    f"{where}: environment {alias}={raw!r} conflicts with {canonical}={env[canonical]!r}; "
                    "set only one of them"
                )
            continue
        _set(merged, target, converted)
        converted_ms = alias == "XTRADER_SINK_FLUSH_MS" and converted is not raw
        origins[target] = f"environment {alias}" + (f"={raw.strip()!r} ms" if converted_ms else "")
    for dotted, override in (overrides or {}).items():
        target = tuple(dotted.split("."))
        if len(target) == 1 and target[0] in Pipeline.model_fields:
            target = ("pipeline", target[0])  # a bare pipeline setting, as the CLI flags name them
        if target[0] not in Capture.model_fields:
            raise ConfigError(f"override {dotted!r}: unknown field {target[0]!r}")
        _set(merged, target, override)
        origins[target] = "command line"
    capture: Capture | None = None
    try:
        capture = Capture.model_validate(merged)
    except ValidationError as exc:
        problems += [_describe(error, origins) for error in exc.errors()]
    if problems or capture is None:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(problems))
    return capture


def _set(data: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for key in path[:-1]:
        inner = data.setdefault(key, {})
        if not isinstance(inner, dict):
            return  # the file's own value is malformed; validation reports it
        data = inner
    data[path[-1]] = value


def _describe(error: ErrorDetails, origins: Mapping[tuple[str, ...], str]) -> str:
    """One error as `field.path: message (got value) [from source]`."""
    loc = error["loc"]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        message = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    if kind not in ("missing", "value_error") and not isinstance(error["input"], dict):
        message += f" (got {_short(error['input'])})"
    origin = origins.get(tuple(str(part) for part in loc))
    if origin:
        message += f" [from {origin}]"
    return f"{where}: {message}" if where else message


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model found at `loc` inside a Capture (empty when it is not a model)."""
    model: Any = Capture
    for part in loc:
        if isinstance(part, int):
            continue  # an element of a tuple: the model is the tuple's item type, found below
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside `Model`, `Model | None` or `tuple[Model, ...]`, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
