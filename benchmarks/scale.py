"""Issue 8, "Scale": aggregate throughput with 1, 2 and 4 connector actors, on a local Ray and on a
`ray.cluster_utils.Cluster` of simulated nodes, and the figures a user sizes a fleet with.

    python benchmarks/scale.py [--connectors 1,2,4] [--nodes 2,4] [--steps-per-connector 20000]
                               [--ws-transport picows|websockets] [--json]

A connector here is one `ConnectorActor`: one wss connection of its own to the benchmark feed (the simulator's
Binance USD-M venue, `xtrader.bench.feed`, in a process of its own), carrying the `depth@100ms` L2 diffs of
`--symbols-per-connector` symbols of its own (the `l2` table; one stream `s<i>` per connector, so one
connection each). The pipeline is the capture's own (`xtrader.bench.e2e.throughput`, `jobs.fleet.start/stop`):
K connectors -> the venue's one order-book actor -> the Parquet sink actor, rows counted on disk at the end.

Per K: messages (data frames the feed wrote), msgs/s (wall: resume -> the sink accepted every row),
msgs per connector CPU-second, msgs per CPU-second of all actors, the CPU seconds of each role (connectors,
book, sink, controller-free: the feed's and this driver's are reported apart), the mean batch (rows per
connector batch), bytes per row in Parquet (files on disk / rows) and in ILP (the same rows through the
QuestDB sink's encoder into a client Buffer), and the Ray overhead per batch: a batch of the mean size handed
to an actor method that only counts its rows, 4 calls in flight, against the
same method called in-process (wall and CPU of caller + actor per batch).

`--nodes N`: the same with K = N on a `ray.cluster_utils.Cluster` of N nodes on this machine (1 CPU each, so
one connector per node; the service actors reserve no CPU). All nodes share this machine's cores: this checks
Ray's placement and cross-raylet overhead, it is not a measure of scaling. The hop is then measured to an actor
on another node. The cluster's nodes are its own processes, removed by `Cluster.shutdown()` (never `ray stop`).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors._wire import RAY_SYSTEM_CONFIG, install
from xtrader.bench import e2e, sizes
from xtrader.bench.runner import machine

TABLES = ("l2",)
HOP_CALLS = 2_000
HOP_INFLIGHT = 4


def role(actor: str) -> str:
    if actor.startswith("book/"):
        return "book"
    if actor.startswith("sink/"):
        return "sink"
    if actor in ("feed", "driver"):
        return actor
    return "connectors"


def inspect(out: str, final: dict[str, Any]) -> dict[str, Any]:
    """Bytes per row, batch sizes and a sample batch of the run's own rows (read before the root goes)."""
    import pyarrow.dataset as ds

    connectors = {name: s for name, s in final.items() if isinstance(s, dict) and "flow_sent_batches" in s}
    rows = sum(int(s.get("rows") or 0) for s in connectors.values())
    batches = sum(int(s.get("flow_sent_batches") or 0) for s in connectors.values())
    mean = rows / batches if batches else 0.0
    sample = None
    if mean:
        dataset = ds.dataset(Path(out) / "l2", format="parquet", partitioning="hive")
        sample = sizes._stored(dataset.head(max(1, round(mean))).to_batches()[0], "l2")
    return {
        "parquet": sizes.parquet_bytes(out, TABLES),
        "ilp_v1": sizes.ilp_bytes(out, TABLES, 1),
        "ilp_v2": sizes.ilp_bytes(out, TABLES, 2),
        "connector_rows": rows,
        "connector_batches": batches,
        "rows_per_batch": round(mean, 1),
        "sample": sample,
    }


def hop(sample: Any, node_id: str | None) -> dict[str, Any]:
    """Ray overhead of handing `sample` ({"l2": batch}) to an actor (on `node_id` if given) against in-process."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from xtrader.bench.cpu import CpuMeter

    class Counter:
        def take(self, batches: dict[str, Any]) -> int:
            return sum(b.num_rows for b in batches.values())

        def pid(self) -> int:
            return os.getpid()

    batches = {"l2": sample}
    local = Counter()
    begin = time.perf_counter()
    for _ in range(HOP_CALLS):
        local.take(batches)
    in_process_us = (time.perf_counter() - begin) / HOP_CALLS * 1e6
    options: dict[str, Any] = {"num_cpus": 0}
    if node_id is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
    actor = ray.remote(Counter).options(**options).remote()
    try:
        pid = ray.get(actor.pid.remote(), timeout=120)
        for _ in range(50):  # warm up
            ray.get(actor.take.remote(batches))
        meter = CpuMeter([pid, os.getpid()])
        meter.start()
        begin = time.perf_counter()
        inflight: list[Any] = []
        for _ in range(HOP_CALLS):
            if len(inflight) >= HOP_INFLIGHT:
                done, inflight = ray.wait(inflight, num_returns=1)
                ray.get(done)
            inflight.append(actor.take.remote(batches))
        ray.get(inflight)
        wall_us = (time.perf_counter() - begin) / HOP_CALLS * 1e6
        cpu = meter.stop_by_pid()
        begin = time.perf_counter()
        for _ in range(200):
            ray.get(actor.take.remote(batches))
        round_trip_us = (time.perf_counter() - begin) / 200 * 1e6
    finally:
        ray.kill(actor)
    return {
        "rows": sample.num_rows,
        "arrow_bytes": sample.nbytes,
        "in_process_us": round(in_process_us, 1),
        "windowed_us_per_batch": round(wall_us, 1),
        "round_trip_us": round(round_trip_us, 1),
        "caller_cpu_us_per_batch": round(cpu[os.getpid()] / HOP_CALLS * 1e6, 1),
        "actor_cpu_us_per_batch": round(cpu[pid] / HOP_CALLS * 1e6, 1),
        "remote_node": node_id is not None,
    }


def measure(ca_bundle: str, k: int, symbols: int, steps: int, latency_mode: Any, transport: Any) -> dict[str, Any]:
    result = e2e.throughput(
        ca_bundle, steps * k, symbols * k, latency_mode, split=k, tables=TABLES, inspect=inspect, transport=transport
    )
    by_role: dict[str, float] = {}
    for name, seconds in result["cpu_s_by"].items():
        by_role[role(name)] = round(by_role.get(role(name), 0.0) + seconds, 4)
    messages = result["messages"]
    window_s = result["wall_s"]
    actors_cpu = sum(v for r, v in by_role.items() if r not in ("feed", "driver"))
    found = result.pop("inspect")
    sample = found.pop("sample")
    return {
        "connectors": k,
        "symbols": symbols * k,
        "messages": messages,
        "msgs_per_s": result["msgs_per_s"],
        "msgs_per_connector_cpu_s": round(messages / by_role["connectors"], 1) if by_role.get("connectors") else None,
        "msgs_per_actor_cpu_s": round(messages / actors_cpu, 1) if actors_cpu else None,
        "cpu_s_by_role": by_role,
        "busy_share": {r: round(v / window_s / (k if r == "connectors" else 1), 2) for r, v in by_role.items()},
        "rows": result["rows"],
        "events": result["events"],
        "sizes": found,
        "_sample": sample,
    }


def local_runs(args: argparse.Namespace, ca_bundle: str) -> list[dict[str, Any]]:
    import ray

    out = []
    for k in args.connectors:
        e2e.init_ray(ca_bundle)
        try:
            run = measure(
                ca_bundle, k, args.symbols_per_connector, args.steps_per_connector, args.latency_mode, args.ws_transport
            )
            run["hop"] = hop(run.pop("_sample"), None) if run["_sample"] is not None else None
        finally:
            ray.shutdown()
        run["load_1m"] = round(os.getloadavg()[0], 2)
        print(f"scale: local K={k}: {run['msgs_per_s']} msg/s", file=sys.stderr, flush=True)
        out.append(run)
    return out


def cluster_runs(args: argparse.Namespace, ca_bundle: str) -> list[dict[str, Any]]:
    return [cluster_run(args, ca_bundle, nodes) for nodes in args.nodes]


def cluster_run(args: argparse.Namespace, ca_bundle: str, nodes: int) -> dict[str, Any]:
    """K = `nodes` connectors on a Cluster of `nodes` 1-CPU nodes (one connector bundle fits each)."""
    import logging

    import ray
    from ray.cluster_utils import Cluster

    head: dict[str, Any] = {"num_cpus": 1, "include_dashboard": False, "_system_config": dict(RAY_SYSTEM_CONFIG)}
    cluster = Cluster(initialize_head=True, head_node_args=head)  # the head's system config is the cluster's
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        ray.init(
            address=cluster.address,
            namespace="xtrader-bench",
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"SSL_CERT_FILE": ca_bundle}},
        )
        install()  # the hop measured from here carries its batch as the actors' calls do
        try:
            run = measure(
                ca_bundle,
                nodes,
                args.symbols_per_connector,
                args.steps_per_connector,
                args.latency_mode,
                args.ws_transport,
            )
            head = ray.get_runtime_context().get_node_id()
            other = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head)
            sample = run.pop("_sample")
            run["hop"] = hop(sample, other) if sample is not None else None
            run["nodes"] = nodes
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()
    run["load_1m"] = round(os.getloadavg()[0], 2)
    print(f"scale: {nodes} nodes K={nodes}: {run['msgs_per_s']} msg/s", file=sys.stderr, flush=True)
    return run


def own_token() -> str:
    """Token authentication with a token of this run's own, in a temp dir (returned), set before Ray reads it:
    never ~/.ray, and every Ray this process starts (local or Cluster nodes, which inherit the env) uses it."""
    token_dir = tempfile.mkdtemp(prefix="xtr-scale-")
    token = Path(token_dir) / "auth_token"
    token.touch(mode=0o600)
    token.write_text(secrets.token_hex(32), encoding="utf-8")
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    return token_dir


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectors", type=ints, default=[1, 2, 4], help="K values on a local Ray")
    parser.add_argument("--nodes", type=ints, default=[2, 4], help="simulated nodes (K = nodes); '' for none")
    parser.add_argument("--symbols-per-connector", type=int, default=3)
    parser.add_argument("--steps-per-connector", type=int, default=20_000, help="pre-encoded market steps")
    parser.add_argument("--latency-mode", choices=("realtime", "archival"), default="realtime")
    parser.add_argument("--ws-transport", choices=("picows", "websockets"), default="picows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    start = machine()
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as bundle:
        pass
    token_dir = own_token()
    try:
        report = {"machine": start, "local": local_runs(args, bundle.name), "cluster": cluster_runs(args, bundle.name)}
    finally:
        os.unlink(bundle.name)
        shutil.rmtree(token_dir, ignore_errors=True)
    report["machine"]["load_1m_end"] = round(os.getloadavg()[0], 2)
    report["settings"] = {k: v for k, v in vars(args).items() if k != "json"}
    # the figure of the largest local K (the most connectors sharing the book and sink actors)
    largest = max(report["local"], key=lambda r: r["connectors"], default=None)
    if largest is not None and largest["msgs_per_actor_cpu_s"]:
        sizing = sizes.Sizing(msgs_per_cpu_s=largest["msgs_per_actor_cpu_s"])
        report["sizing"] = sizing.table((10, 50, 200, 1000, 5000), (1, 2, 4))
    print(json.dumps(report, indent=None if args.json else 2, default=str))


if __name__ == "__main__":
    main()
