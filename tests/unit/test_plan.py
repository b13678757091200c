"""Planning without Ray: connections, placement bundles, actor specs, routes, CPUs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xtrader.config import ROTATION_PRESETS, load_config, parse_config
from xtrader.errors import ConfigError
from xtrader.plan import Endpoint, Plan, Route, build_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SIM = {
    venue: Endpoint(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    for venue, port in (("binance", 9001), ("binance_futures", 9003), ("okx", 9005), ("deribit", 9007))
}


def plan_of(streams: list[dict[str, Any]], endpoints: Any = None, **fields: Any) -> Plan:
    return build_plan(parse_config({"streams": streams, **fields}, environ={}), endpoints)


def test_one_connector_per_connection_on_the_official_endpoint() -> None:
    plan = plan_of([{"venue": "binance", "symbols": ["BTCUSDT", "ETHUSDT"]}])
    (connector,) = plan.connectors
    assert connector.id == "binance/c0/r0"
    assert connector.url.startswith("wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade/")
    assert (connector.ws_base, connector.rest_base) == ("wss://stream.binance.com:9443", "https://api.binance.com")
    assert len(connector.subscriptions) == 6
    assert (connector.placement_group, connector.bundle_index, connector.cpus) == ("binance/c0", 0, 1.0)


def test_binance_usdm_streams_are_split_by_route_by_the_venue() -> None:
    plan = plan_of([{"venue": "binance_futures", "symbols": ["BTCUSDT"]}])
    urls = [c.url for c in plan.connectors]
    assert urls == [
        "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker",
        "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade",
    ]
    assert [c.id for c in plan.connectors] == ["binance_futures/c0/r0", "binance_futures/c1/r0"]


def test_redundant_copies_share_a_placement_group_one_bundle_each() -> None:
    plan = plan_of(
        [{"venue": "okx", "symbols": ["BTC-USDT"], "redundancy": 3}],
        pipeline={"placement_strategy": "STRICT_SPREAD", "connector_cpus": 0.5},
    )
    (group,) = plan.placement_groups
    assert group.id == "okx/c0"
    assert group.bundles == ({"CPU": 0.5},) * 3
    assert group.strategy == "STRICT_SPREAD" and group.min_nodes == 3
    assert [(c.id, c.bundle_index, c.replica) for c in plan.connectors] == [
        ("okx/c0/r0", 0, 0),
        ("okx/c0/r1", 1, 1),
        ("okx/c0/r2", 2, 2),
    ]
    assert len({c.url for c in plan.connectors}) == 1


def test_a_single_connection_is_packed_whatever_the_strategy() -> None:
    plan = plan_of([{"venue": "okx", "symbols": ["BTC-USDT"]}], pipeline={"placement_strategy": "STRICT_SPREAD"})
    assert plan.placement_groups[0].strategy == "PACK"
    assert plan.placement_groups[0].min_nodes == 1


def test_redundancy_adds_an_arbiter_between_connectors_and_the_rest() -> None:
    plan = plan_of([{"venue": "deribit", "symbols": ["BTC-PERPETUAL"], "redundancy": 2}])
    (arbiter,) = plan.arbiters
    assert arbiter.id == "deribit/arbiter"
    assert arbiter.inputs == ("deribit/c0/r0", "deribit/c0/r1")
    assert arbiter.capacity == 200_000 and arbiter.ttl_s == 60.0
    assert plan.targets("deribit/c0/r0") == {
        "events": ("sink/parquet",),
        "trades": ("deribit/arbiter",),
        "l2": ("deribit/arbiter",),
        "bbo": ("deribit/arbiter",),
    }
    assert plan.targets("deribit/arbiter") == {
        "trades": ("sink/parquet",),
        "bbo": ("sink/parquet",),
        "l2": ("book/deribit",),
    }
    assert plan.books[0].inputs == ("deribit/arbiter",)


def test_without_redundancy_there_is_no_arbiter() -> None:
    plan = plan_of([{"venue": "deribit", "symbols": ["BTC-PERPETUAL"]}])
    assert plan.arbiters == ()
    assert plan.targets("deribit/c0/r0")["l2"] == ("book/deribit",)


def test_one_book_actor_per_venue_with_l2() -> None:
    plan = plan_of(
        [
            {"venue": "binance", "symbols": ["BTCUSDT"]},
            {"name": "binance-eth", "venue": "binance", "symbols": ["ETHUSDT"], "tables": ["l2"]},
            {"venue": "okx", "symbols": ["BTC-USDT"], "tables": ["trades"]},
        ],
        pipeline={"snapshot_interval_s": 5, "book_snapshot_depth": 10, "book_gap_hold_s": 0.5},
    )
    (book,) = plan.books
    assert book.id == "book/binance"
    assert book.symbols == ("BTCUSDT", "ETHUSDT")
    assert book.inputs == ("binance/c0/r0", "binance-eth/c0/r0")
    assert (book.snapshot_interval_s, book.depth, book.gap_hold_s) == (5.0, 10, 0.5)
    assert plan.targets("book/binance") == {t: ("sink/parquet",) for t in ("l2", "book_snapshots", "events")}


def test_only_connections_carrying_l2_feed_the_book() -> None:
    plan = plan_of([{"venue": "binance_futures", "symbols": ["BTCUSDT"]}])
    assert plan.books[0].inputs == ("binance_futures/c0/r0",)  # /public: depth + bookTicker
    assert "l2" not in plan.targets("binance_futures/c1/r0")  # /market: trades only


def test_every_enabled_sink_gets_a_spec_and_every_route_to_sinks() -> None:
    plan = plan_of(
        [{"venue": "okx", "symbols": ["BTC-USDT"], "tables": ["trades"]}],
        sinks={"questdb": {"enabled": True}, "parquet": {"root": "/tmp/x"}},
        pipeline={"latency_mode": "archival"},
    )
    assert [s.id for s in plan.sinks] == ["sink/parquet", "sink/questdb"]
    parquet, questdb = plan.sinks
    assert parquet.rotation is not None
    assert parquet.rotation.seconds == ROTATION_PRESETS["archival"]["rotation_seconds"]
    assert questdb.rotation is None and questdb.config.enabled
    assert plan.targets("okx/c0/r0") == {
        "events": ("sink/parquet", "sink/questdb"),
        "trades": ("sink/parquet", "sink/questdb"),
    }


def test_routes_are_unique_per_source_and_target() -> None:
    plan = build_plan(load_config(EXAMPLES / "live.yaml", environ={}))
    pairs = [(r.source, r.target) for r in plan.routes]
    assert len(pairs) == len(set(pairs))
    known = {c.id for c in plan.connectors} | {a.id for a in plan.arbiters}
    known |= {b.id for b in plan.books} | {s.id for s in plan.sinks}
    assert all(r.source in known and r.target in known for r in plan.routes)
    assert all(isinstance(r, Route) and r.tables for r in plan.routes)


def test_simulated_streams_use_the_simulator_endpoints() -> None:
    plan = build_plan(load_config(EXAMPLES / "simulator.yaml", environ={}), SIM)
    by_id = {c.id: c for c in plan.connectors}
    assert by_id["okx/c0/r0"].url == "ws://127.0.0.1:9005/ws/v5/public"
    assert by_id["okx/c0/r0"].rest_base == "http://127.0.0.1:9005"
    assert by_id["binance_futures/c0/r0"].url.startswith("ws://127.0.0.1:9003/public/stream?streams=")
    assert by_id["binance_futures/c1/r0"].url.startswith("ws://127.0.0.1:9003/market/stream?streams=")
    assert all(c.url.startswith("ws://127.0.0.1:") for c in plan.connectors)


def test_an_explicit_endpoint_beats_the_simulator() -> None:
    streams = [{"venue": "okx", "symbols": ["BTC-USDT"], "ws_base": "wss://mirror.example"}]
    plan = plan_of(streams, SIM, simulator={})
    assert plan.connectors[0].url == "wss://mirror.example/ws/v5/public"
    assert plan.connectors[0].rest_base == "http://127.0.0.1:9005"


def test_a_simulated_stream_without_simulator_endpoints_is_a_config_error() -> None:
    config = load_config(EXAMPLES / "simulator.yaml", environ={})
    with pytest.raises(ConfigError, match=r"streams\[0\] \(binance\): simulated, but the simulator serves no"):
        build_plan(config)
    with pytest.raises(ConfigError, match=r"streams\[3\] \(deribit\)"):
        build_plan(config, {k: v for k, v in SIM.items() if k != "deribit"})


def test_a_channel_the_venue_rejects_names_the_stream() -> None:
    config = parse_config(
        {"streams": [{"venue": "binance", "symbols": ["BTCUSDT"], "channels": {"l2": "books"}}]}, environ={}
    )
    with pytest.raises(ConfigError, match=r"streams\[0\] \(binance\): .*channel='books'"):
        build_plan(config)


def test_cpus_add_up_and_problems_are_reported() -> None:
    plan = plan_of(
        [
            {"venue": "okx", "symbols": ["BTC-USDT"], "redundancy": 2},
            {"venue": "deribit", "symbols": ["BTC-PERPETUAL"]},
        ],
        pipeline={"placement_strategy": "STRICT_SPREAD", "connector_cpus": 1.5, "service_cpus": 0.25},
    )
    # connectors 3 x 1.5; services: arbiter, two books, one sink at 0.25
    assert plan.connector_cpus == 4.5
    assert plan.total_cpus == 4.5 + 4 * 0.25
    assert plan.problems(cluster_cpus=16, nodes=2) == []
    assert plan.problems(cluster_cpus=4, nodes=1) == [
        "the capture needs 5.5 CPUs, the cluster has 4",
        "placement group okx/c0: STRICT_SPREAD over 2 nodes, the cluster has 1",
    ]


def test_a_fused_capture_needs_its_one_process_cpus_and_no_placement_group() -> None:
    streams = [
        {"venue": "okx", "symbols": ["BTC-USDT"], "redundancy": 2},
        {"venue": "deribit", "symbols": ["BTC-PERPETUAL"]},
    ]
    pipeline = {"placement_strategy": "STRICT_SPREAD", "connector_cpus": 1.5, "service_cpus": 0.25, "fused": True}
    plan = plan_of(streams, pipeline=pipeline)
    # every stage in one FusedActor of connector_cpus (jobs.fleet.start creates no placement group)
    assert plan.fused_cpus == plan.connector_cpus == plan.total_cpus == 1.5
    assert plan.problems(cluster_cpus=2, nodes=1) == []
    assert plan.problems(cluster_cpus=1, nodes=1) == ["the capture needs 1.5 CPUs, the cluster has 1"]
    # the same streams in actors need every bundle
    assert plan_of(streams, pipeline={**pipeline, "fused": False}).total_cpus == 5.5


def test_plans_are_deterministic() -> None:
    config = load_config(EXAMPLES / "live.yaml", environ={})
    assert build_plan(config) == build_plan(config)


def test_the_live_example_plans_every_venue() -> None:
    plan = build_plan(load_config(EXAMPLES / "live.yaml", environ={}))
    assert {c.venue for c in plan.connectors} == {"binance", "binance_futures", "okx", "deribit"}
    assert {b.venue for b in plan.books} == {"binance", "binance_futures", "okx", "deribit"}
    assert [a.id for a in plan.arbiters] == ["binance_futures/arbiter"]
    hosts = {c.url.split("/")[2] for c in plan.connectors}
    assert hosts == {"stream.binance.com:9443", "fstream.binance.com", "ws.okx.com:8443", "www.deribit.com"}
