"""A node lost mid-capture (issue 10, "Each fault, a test against the simulator's ground truth").

A `ray.cluster_utils.Cluster` of 3 simulated nodes of 1 CPU each (a head and 2 workers: real raylets on this
machine) runs a capture of the simulator whose stream has redundancy 2 under `placement_strategy:
STRICT_SPREAD`: the stream's placement group has one 1-CPU bundle per connection, on two different nodes.
Once both connections stream and the books are valid, the worker node holding one of the bundles is removed
abruptly (`cluster.remove_node(allow_graceful=False)`: its raylet and workers are SIGKILLed, as when a spot
instance goes). The capture must go on: Ray reschedules the lost bundle on the node left free, restarts the
connector there (the driver starts it again), and the surviving connection covers the outage, so at the end
written == sent + rest with no gap, no duplicate, and every book equal to the simulator's. The service actors
(sinks, book, arbiter, controller) run on the driver's node, the head, which is never removed.

Everything runs in a subprocess (`python -m tests.cluster.test_node_loss OUT`) of the test's own: the cluster,
its driver, and the node removal. `RAY_TMPDIR` is a private temp dir, so the cluster shares nothing with the
test session's Ray or another engineer's (Cluster writes its address file under it); the test kills whatever
still names that dir afterwards. The driver prints one JSON line; the test checks it and the Parquet files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.cluster.conftest import UNTIL_TIMEOUT_S, wait_for

NAMESPACE = "xtrader-node-loss-test"
CAPTURE = "node-loss"
VENUE = "binance"
SYMBOLS = 2
RESULT = "node-loss-result: "
REPO = Path(__file__).resolve().parents[2]


def test_a_lost_node_is_survived_with_strict_spread_redundancy_and_nothing_is_lost(tmp_path: Path) -> None:
    from tests.cluster.private_ray import stop_processes_naming
    from tests.cluster.test_actor_kills import assert_no_duplicates, gap_rows
    from tests.cluster.test_pipeline import assert_complete

    started = time.monotonic()
    temp_dir = tempfile.mkdtemp(prefix="xtr-nl-", dir="/tmp")  # short: Ray puts unix sockets under it
    root = tmp_path / "data"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.cluster.test_node_loss", str(root)],
            cwd=REPO,
            env={**os.environ, "RAY_TMPDIR": temp_dir, "PYTHONUNBUFFERED": "1"},
            capture_output=True,
            text=True,
            timeout=UNTIL_TIMEOUT_S + 240,
            check=False,
        )
    finally:
        left = stop_processes_naming(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert len(lines) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[0].removeprefix(RESULT))
    summary = result["summary"]

    # the two connections were on two nodes, one of them was lost, and its connector came back on another
    before, after = result["bundles_before"], result["bundles_after"]
    assert len(set(before.values())) == 2, before
    assert result["removed"] in before.values() and result["removed"] not in after.values(), result
    assert len(set(after.values())) == 2, after  # still spread over two (live) nodes
    assert result["restarted"], result
    # the capture's service actors (sinks, book, arbiter, controller) ran on the driver's node (the head), not on
    # the connectors' nodes: losing one of those must not take the stream's only book or arbiter with it
    services = {name: node for name, (node, _, _) in result["actors_before"].items() if "/c" not in name}
    assert set(services.values()) == {result["driver_node"]}, (result["driver_node"], result["actors_after"])
    # the capture went on: every row the simulator sent is written once, no gap (redundancy 2 covered it),
    # and the books equal the simulator's
    assert_complete(summary, root)
    assert summary["books"]["checked"] == SYMBOLS, summary["books"]
    assert gap_rows(root) == 0
    assert_no_duplicates(root)
    print(
        f"node loss: nodes {result['nodes']}, bundles {_short(before)} -> {_short(after)}; placement group "
        f"from the removal on (s, state, bundles): {result['group_states']}; remove_node took "
        f"{result['removed_in_s']:.1f} s; bundle back on a live node "
        f"{result['replaced_after_s']:.1f} s after it, connector streaming again after "
        f"{result['recovered_after_s']:.1f} s; whole test {elapsed:.1f} s; processes left: {len(left)}"
    )


# -- the driver (a subprocess with a cluster of its own) -----------------------------------------------------------


def drive(out: str) -> dict[str, Any]:
    import ray

    from jobs.demo import demo_capture
    from jobs.run import run
    from xtrader.config import Capture
    from xtrader.control import attach

    cluster, workers = start_cluster()
    try:
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)

        data = demo_capture(out, symbols=SYMBOLS, rate=40.0, venues=(VENUE,), redundancy=2).model_dump()
        data["name"] = CAPTURE
        data["pipeline"]["placement_strategy"] = "STRICT_SPREAD"
        data["cluster"].update(num_cpus=None, placement_timeout_s=180.0)
        capture = Capture.model_validate(data)

        stop = threading.Event()
        summary: dict[str, Any] = {}
        failed: list[BaseException] = []

        def capture_thread() -> None:
            try:
                summary.update(run(capture, UNTIL_TIMEOUT_S, stop_event=stop))
            except BaseException as exc:
                failed.append(exc)

        def checked(condition: Any) -> Any:
            def check() -> Any:
                if failed:
                    raise AssertionError(f"the capture failed: {failed[0]!r}") from failed[0]
                return condition()

            return check

        def controller() -> Any:
            try:
                return attach(namespace=NAMESPACE)
            except (LookupError, ray.exceptions.RayError):
                return None

        def streaming(pids: dict[str, int] | None = None) -> dict[str, Any] | None:
            try:
                stats = control.actor_stats()
            except ray.exceptions.RayError:  # an actor restarting: not yet
                return None
            connectors = {n: s for n, s in stats.items() if n.startswith(f"{VENUE}/c") and isinstance(s, dict)}
            if stats.get(f"book/{VENUE}", {}).get("valid") != SYMBOLS or len(connectors) != 2:
                return None
            if not all(s.get("started") and s.get("messages", 0) >= 50 for s in connectors.values()):
                return None
            if any(stats[name].get("pid") == pid for name, pid in (pids or {}).items()):
                return None
            return connectors

        def bundles() -> tuple[str, dict[str, str]]:
            """The stream's placement group: its state and {bundle index: node id}."""
            for group in ray.util.placement_group_table().values():
                if group.get("name", "").startswith(f"{CAPTURE}:"):
                    return group["state"], {str(i): n for i, n in group.get("bundles_to_node_id", {}).items()}
            return "NONE", {}

        driver = threading.Thread(target=capture_thread)
        driver.start()
        try:
            control = wait_for("the capture's controller", checked(controller))
            connectors = wait_for("both connections streaming, every book valid", checked(streaming))
            state, before = bundles()
            assert state == "CREATED", state
            head = cluster.head_node.node_id
            victim = next(w for w in workers if w.node_id in before.values() and w.node_id != head)
            # a connector's bundle is its replica (`VENUE/c0/rN`: bundle N, xtrader.plan)
            lost = [name for name in connectors if int(name.rsplit("/r", 1)[1]) in _indices(before, victim.node_id)]
            pids = {name: int(connectors[name]["pid"]) for name in lost}
            # what Ray does with the group: sampled every 0.1 s from the removal on ((s, state, bundles) per change)
            states: list[tuple[float, str, dict[str, str]]] = []
            sampled = threading.Event()

            def sample() -> None:
                while not sampled.is_set():
                    state, now = bundles()
                    if not states or states[-1][1:] != (state, now):
                        states.append((round(time.monotonic() - removed_at, 2), state, now))
                    sampled.wait(0.1)

            actors_before = _actors()
            driver_node = ray.get_runtime_context().get_node_id()
            removed_at = time.monotonic()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            # abruptly, as a spot instance goes (SIGKILL: the raylet cannot tell the GCS it is leaving)
            cluster.remove_node(victim, allow_graceful=False)
            removed_s = time.monotonic() - removed_at

            def replaced() -> dict[str, str] | None:
                state, now = bundles()
                ok = state == "CREATED" and victim.node_id not in now.values() and len(now) == 2
                return now if ok else None

            after = wait_for("the lost bundle placed on a live node", checked(replaced))
            replaced_s = time.monotonic() - removed_at
            wait_for("the lost connection streaming again, every book valid", checked(lambda: streaming(pids)))
            recovered_s = time.monotonic() - removed_at
            sampled.set()
            actors = _actors()
            control.stop()
        finally:
            stop.set()
            driver.join(UNTIL_TIMEOUT_S)
        if failed:
            raise failed[0]
        return {
            "summary": summary,
            "bundles_before": before,
            "bundles_after": after,
            "removed": victim.node_id,
            "restarted": sorted(pids),
            "group_states": [(t, state, _short(now)) for t, state, now in states],
            "nodes": {"head": _short({"h": head})["h"], "workers": [_short({"w": w.node_id})["w"] for w in workers]},
            "removed_in_s": removed_s,
            "driver_node": driver_node[:8],
            "actors_before": actors_before,
            "actors_after": actors,
            "replaced_after_s": replaced_s,
            "recovered_after_s": recovered_s,
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


def start_cluster(attempts: int = 3) -> tuple[Any, list[Any]]:
    """The head (1 CPU) and 2 workers (1 CPU each); tried `attempts` times: on a loaded machine a node can miss
    Ray's fixed 30 s raylet registration ("The current node timed out during startup")."""
    from ray.cluster_utils import Cluster

    from tests.cluster.private_ray import stop_processes_naming

    for attempt in range(1, attempts + 1):
        cluster = Cluster(shutdown_at_exit=True)
        try:
            cluster.add_node(num_cpus=1, include_dashboard=False)
            workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
            cluster.wait_for_nodes()
            return cluster, workers
        except Exception as exc:
            print(f"node loss: the cluster did not start (attempt {attempt}): {exc}", file=sys.stderr, flush=True)
            cluster.shutdown()
            stop_processes_naming(os.environ["RAY_TMPDIR"])  # a node that failed is in no list of the cluster
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _actors() -> dict[str, Any]:
    """Every named actor of the capture: {name: (node id, state, restarts)} (from the GCS actor table)."""
    import ray

    out = {}
    for info in ray._private.state.actors().values():
        name = info.get("Name") or ""
        if name.startswith("xtrader"):
            out[name.rsplit(":", 1)[-1]] = (info["Address"]["NodeID"][:8], info["State"], info.get("NumRestarts"))
    return out


def _short(bundles: dict[str, str]) -> dict[str, str]:
    """Node ids cut to 8 characters (for the report)."""
    return {key: node[:8] for key, node in bundles.items()}


def _indices(bundles: dict[str, str], node_id: str) -> set[int]:
    return {int(index) for index, node in bundles.items() if node == node_id}


if __name__ == "__main__":
    print(RESULT + json.dumps(drive(sys.argv[1])), flush=True)
