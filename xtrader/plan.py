"""Pure: a validated `Capture` -> the actors to start, where they go and how they are wired.

Per stream, the venue splits the subscriptions into websocket connections
(URL routing, stream caps); each connection is opened `redundancy` times. The
copies of one connection form one placement group (one bundle each), spread
over nodes when `placement_strategy` asks for it. A stream with redundancy > 1
gets an arbiter; every venue with l2 streams gets an order-book actor; every
enabled sink gets a sink actor. Ids are deterministic, so a plan computed
twice is equal, and the routes name them.

Data flow (`Plan.routes`):
    connector --(stream tables)--> arbiter            (redundancy > 1)
    producer  --(l2)--> book/<venue> --(l2, book_snapshots, events)--> sinks
    producer  --(trades, bbo)--> sinks                (producer: the arbiter, else the connector)
    connector --(events)--> sinks                     (connect / disconnect / reject per connection)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from xtrader.config import Capture, ParquetSink, PlacementStrategy, QuestDBSink, Rotation, Stream
from xtrader.errors import ConfigError
from xtrader.venues import venue
from xtrader.venues.base import Subscription

SinkKind = Literal["parquet", "questdb"]


class Endpoint(NamedTuple):
    """Where a venue is served: a running simulator's bases for that venue."""

    ws_base: str
    rest_base: str


@dataclass(frozen=True)
class ConnectorSpec:
    """One websocket connection (one ConnectorActor)."""

    id: str  # "<stream>/c<connection>/r<replica>"
    stream: str
    venue: str
    url: str
    ws_base: str  # resolved: the venue is rebuilt from these inside the actor
    rest_base: str
    subscriptions: tuple[Subscription, ...]
    connection: int  # index of the connection within its stream
    replica: int  # 0 .. redundancy - 1
    placement_group: str
    bundle_index: int
    cpus: float
    book_source: str | None = None  # where l2 books start (`Stream.book_source`, resolved; None: the venue's way)
    ws_snapshot_wait_s: float = 1.0  # book_source auto: wait for a websocket snapshot this long after the ack
    snapshot_depth: int | None = None  # REST snapshot levels (`Stream.snapshot_depth`; None: the venue's default)


@dataclass(frozen=True)
class PlacementGroupSpec:
    """The bundles of the redundant copies of one connection."""

    id: str  # "<stream>/c<connection>"
    bundles: tuple[Mapping[str, float], ...]
    strategy: PlacementStrategy

    @property
    def cpus(self) -> float:
        return sum(bundle.get("CPU", 0.0) for bundle in self.bundles)

    @property
    def min_nodes(self) -> int:
        """Nodes the group needs: one per bundle under STRICT_SPREAD, else one."""
        return len(self.bundles) if self.strategy == "STRICT_SPREAD" else 1


@dataclass(frozen=True)
class ArbiterSpec:
    """First-arrival dedup across the redundant connections of one stream."""

    id: str  # "<stream>/arbiter"
    stream: str
    venue: str
    tables: tuple[str, ...]
    inputs: tuple[str, ...]  # connector ids
    capacity: int
    ttl_s: float
    rotation_interval_s: float
    rotation_min_win_share: float
    cpus: float


@dataclass(frozen=True)
class OrderBookSpec:
    """The books of one venue's l2 symbols."""

    id: str  # "book/<venue>"
    venue: str
    symbols: tuple[str, ...]
    inputs: tuple[str, ...]  # producers of the venue's l2 rows
    snapshot_interval_s: float
    depth: int
    cpus: float
    gap_hold_s: float


@dataclass(frozen=True)
class SinkSpec:
    """One sink actor."""

    id: str  # "sink/<kind>"
    kind: SinkKind
    config: ParquetSink | QuestDBSink
    rotation: Rotation | None  # parquet only, presets resolved
    row_group_rows: int
    flush_interval_s: float
    cpus: float


@dataclass(frozen=True)
class Route:
    """`source` sends batches of `tables` to `target`."""

    source: str
    target: str
    tables: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """Everything the driver creates, in creation order (sinks first, connectors last)."""

    capture: str
    sinks: tuple[SinkSpec, ...]
    books: tuple[OrderBookSpec, ...]
    arbiters: tuple[ArbiterSpec, ...]
    placement_groups: tuple[PlacementGroupSpec, ...]
    connectors: tuple[ConnectorSpec, ...]
    routes: tuple[Route, ...]
    #: `pipeline.fused`: the CPUs of the one process every stage runs in (`jobs.fleet` then creates none of
    #: `placement_groups`); None: the actor layout
    fused_cpus: float | None = None

    @property
    def connector_cpus(self) -> float:
        if self.fused_cpus is not None:
            return self.fused_cpus
        return sum(group.cpus for group in self.placement_groups)

    @property
    def total_cpus(self) -> float:
        """CPUs the whole capture reserves (connector bundles and service actors; fused: its one process)."""
        if self.fused_cpus is not None:
            return self.fused_cpus
        services = (
            sum(s.cpus for s in self.sinks) + sum(b.cpus for b in self.books) + sum(a.cpus for a in self.arbiters)
        )
        return self.connector_cpus + services

    def targets(self, source: str) -> dict[str, tuple[str, ...]]:
        """Where `source` sends each table: table -> target ids."""
        out: dict[str, list[str]] = {}
        for route in self.routes:
            if route.source == source:
                for table in route.tables:
                    out.setdefault(table, []).append(route.target)
        return {table: tuple(targets) for table, targets in out.items()}

    def problems(self, cluster_cpus: float, nodes: int) -> list[str]:
        """Why the plan cannot be placed on a (non-autoscaling) cluster of this size; empty when it can."""
        found = []
        if self.total_cpus > cluster_cpus:
            found.append(f"the capture needs {self.total_cpus:g} CPUs, the cluster has {cluster_cpus:g}")
        for group in () if self.fused_cpus is not None else self.placement_groups:
            if group.min_nodes > nodes:
                found.append(
                    f"placement group {group.id}: STRICT_SPREAD over {group.min_nodes} nodes, the cluster has {nodes}"
                )
        return found


def build_plan(capture: Capture, simulator: Mapping[str, Endpoint] | None = None) -> Plan:
    """Plan a capture.

    Args:
        capture: the validated configuration.
        simulator: the running simulator's endpoints per venue name, for the simulated streams.

    Raises:
        ConfigError: a simulated stream without simulator endpoints, or a subscription the venue rejects
            (the message names the stream).
    """
    pipeline = capture.pipeline
    sinks = _sinks(capture)
    routes = _Routes()
    connectors: list[ConnectorSpec] = []
    groups: list[PlacementGroupSpec] = []
    arbiters: list[ArbiterSpec] = []
    l2_inputs: dict[str, list[str]] = {}
    l2_symbols: dict[str, list[str]] = {}
    for index, stream in enumerate(capture.streams):
        stream_groups, stream_connectors = _connectors(capture, index, stream, simulator)
        groups.extend(stream_groups)
        connectors.extend(stream_connectors)
        producers = [(spec.id, _tables(stream, spec.subscriptions)) for spec in stream_connectors]
        for spec in stream_connectors:
            routes.add(spec.id, [sink.id for sink in sinks], ("events",))
        if stream.redundancy > 1:
            arbiter = _arbiter(capture, stream, tuple(spec.id for spec in stream_connectors))
            arbiters.append(arbiter)
            for source, tables in producers:
                routes.add(source, [arbiter.id], tables)
            producers = [(arbiter.id, stream.tables)]
        for source, tables in producers:
            routes.add(source, [sink.id for sink in sinks], [table for table in tables if table != "l2"])
            if "l2" in tables:
                routes.add(source, [f"book/{stream.venue}"], ("l2",))
                l2_inputs.setdefault(stream.venue, []).append(source)
        if "l2" in stream.tables:
            l2_symbols.setdefault(stream.venue, []).extend(stream.symbols)
    books = tuple(
        OrderBookSpec(
            id=f"book/{name}",
            venue=name,
            symbols=tuple(l2_symbols[name]),
            inputs=tuple(inputs),
            snapshot_interval_s=pipeline.snapshot_interval_s,
            depth=pipeline.book_snapshot_depth,
            cpus=pipeline.service_cpus,
            gap_hold_s=pipeline.book_gap_hold_s,
        )
        for name, inputs in l2_inputs.items()
    )
    for book in books:
        routes.add(book.id, [sink.id for sink in sinks], ("l2", "book_snapshots", "events"))
    fused = pipeline.connector_cpus if pipeline.fused else None
    return Plan(capture.name, sinks, books, tuple(arbiters), tuple(groups), tuple(connectors), routes.build(), fused)


class _Routes:
    """Routes in insertion order, one per (source, target), tables merged."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], list[str]] = {}

    def add(self, source: str, targets: Sequence[str], tables: Iterable[str]) -> None:
        tables = list(tables)
        if not tables:
            return
        for target in targets:
            known = self._tables.setdefault((source, target), [])
            known.extend(table for table in tables if table not in known)

    def build(self) -> tuple[Route, ...]:
        return tuple(Route(source, target, tuple(tables)) for (source, target), tables in self._tables.items())


def _tables(stream: Stream, subscriptions: Iterable[Subscription]) -> tuple[str, ...]:
    """The stream's tables a connection carries, in the stream's order."""
    carried = {subscription.table for subscription in subscriptions}
    return tuple(table for table in stream.tables if table in carried)


def _connectors(
    capture: Capture, index: int, stream: Stream, simulator: Mapping[str, Endpoint] | None
) -> tuple[list[PlacementGroupSpec], list[ConnectorSpec]]:
    """The placement groups (one per connection) and connectors (one per copy) of a stream."""
    cpus = capture.pipeline.connector_cpus
    ws_base, rest_base, connections = _connections(capture, index, stream, simulator)
    groups: list[PlacementGroupSpec] = []
    connectors: list[ConnectorSpec] = []
    for number, (url, subscriptions) in enumerate(connections):
        group = PlacementGroupSpec(
            id=f"{stream.id}/c{number}",
            bundles=tuple({"CPU": cpus} for _ in range(stream.redundancy)),
            strategy=capture.pipeline.placement_strategy if stream.redundancy > 1 else "PACK",
        )
        groups.append(group)
        connectors.extend(
            ConnectorSpec(
                id=f"{group.id}/r{replica}",
                stream=stream.id,
                venue=stream.venue,
                url=url,
                ws_base=ws_base,
                rest_base=rest_base,
                subscriptions=subscriptions,
                connection=number,
                replica=replica,
                placement_group=group.id,
                bundle_index=replica,
                cpus=cpus,
                book_source=stream.resolved_book_source(),
                ws_snapshot_wait_s=stream.ws_snapshot_wait_s,
                snapshot_depth=stream.snapshot_depth,
            )
            for replica in range(stream.redundancy)
        )
    return groups, connectors


def _connections(
    capture: Capture, index: int, stream: Stream, simulator: Mapping[str, Endpoint] | None
) -> tuple[str, str, list[tuple[str, tuple[Subscription, ...]]]]:
    """Resolved (ws_base, rest_base) of a stream and its connections as (url, subscriptions)."""
    where = f"streams[{index}] ({stream.id})"
    ws_base, rest_base = stream.ws_base, stream.rest_base
    if capture.is_simulated(stream) and (ws_base is None or rest_base is None):
        served = (simulator or {}).get(stream.venue)
        if served is None:
            raise ConfigError(f"{where}: simulated, but the simulator serves no endpoint for {stream.venue!r}")
        ws_base, rest_base = ws_base or served.ws_base, rest_base or served.rest_base
    instance = venue(stream.venue, ws_base, rest_base)
    try:
        connections = instance.connections(stream.subscriptions())
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return instance.ws_base, instance.rest_base, [(c.url, c.subscriptions) for c in connections]


def _arbiter(capture: Capture, stream: Stream, inputs: tuple[str, ...]) -> ArbiterSpec:
    pipeline = capture.pipeline
    return ArbiterSpec(
        id=f"{stream.id}/arbiter",
        stream=stream.id,
        venue=stream.venue,
        tables=stream.tables,
        inputs=inputs,
        capacity=pipeline.arbiter_capacity,
        ttl_s=pipeline.arbiter_ttl_s,
        rotation_interval_s=pipeline.rotation_interval_s,
        rotation_min_win_share=pipeline.rotation_min_win_share,
        cpus=pipeline.service_cpus,
    )


def _sinks(capture: Capture) -> tuple[SinkSpec, ...]:
    pipeline, configured = capture.pipeline, capture.sinks
    enabled: list[tuple[SinkKind, ParquetSink | QuestDBSink, Rotation | None]] = []
    if configured.parquet.enabled:
        enabled.append(("parquet", configured.parquet, configured.parquet.rotation(pipeline.latency_mode)))
    if configured.questdb.enabled:
        enabled.append(("questdb", configured.questdb, None))
    return tuple(
        SinkSpec(
            id=f"sink/{kind}",
            kind=kind,
            config=config,
            rotation=rotation,
            row_group_rows=pipeline.row_group_rows,
            flush_interval_s=pipeline.flush_interval_s,
            cpus=pipeline.service_cpus,
        )
        for kind, config, rotation in enabled
    )
