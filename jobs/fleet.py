"""The running capture's actors: placement groups, start in data-flow order, drain and close, teardown."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from xtrader.config import Capture
from xtrader.errors import XtraderError
from xtrader.plan import Plan

log = logging.getLogger("xtrader.capture")


class PlacementTimeout(XtraderError):
    """Placement groups still pending after the timeout (the cluster cannot, or not yet, hold them)."""

    terminal = True


@dataclass
class Running:
    """Handles of everything the driver created."""

    plan: Plan
    groups: dict[str, Any] = field(default_factory=dict)
    sinks: dict[str, Any] = field(default_factory=dict)
    books: dict[str, Any] = field(default_factory=dict)
    arbiters: dict[str, Any] = field(default_factory=dict)
    connectors: dict[str, Any] = field(default_factory=dict)
    controller: Any = None
    host: Any = None  # the FusedActor holding every stage (`pipeline.fused`), else None
    added_streams: list[dict[str, Any]] = field(default_factory=list)  # streams started at run time

    def all(self) -> dict[str, Any]:
        return {**self.sinks, **self.books, **self.arbiters, **self.connectors}


def wait_for_placement(groups: dict[str, Any], timeout_s: float) -> None:
    """Wait for every placement group; raise PlacementTimeout naming the pending ones (never hang)."""
    import ray

    ready = {group.ready(): name for name, group in groups.items()}
    _, pending = ray.wait(list(ready), num_returns=len(ready), timeout=timeout_s)
    if pending:
        names = sorted(ready[ref] for ref in pending)
        raise PlacementTimeout(
            f"{len(names)} placement group(s) still pending after {timeout_s:g} s: {', '.join(names)}; "
            "the cluster lacks the CPUs (or nodes, for STRICT_SPREAD) they need: add nodes, lower "
            "pipeline.connector_cpus, or raise cluster.placement_timeout_s"
        )


def start(capture: Capture, plan: Plan) -> Running:
    """Create placement groups and every actor, wire them, start the connectors (`pipeline.fused`: one
    FusedActor holds every stage, and no connector has a placement group of its own)."""
    from ray.util.placement_group import placement_group, remove_placement_group

    pipeline = capture.pipeline
    running = Running(plan)
    if pipeline.fused:
        return _start(capture, running, fused=True)
    for group in plan.placement_groups:
        running.groups[group.id] = placement_group(
            [dict(b) for b in group.bundles], strategy=group.strategy, name=f"{capture.name}:{group.id}"
        )
    try:
        wait_for_placement(running.groups, capture.cluster.placement_timeout_s)
    except PlacementTimeout:
        for group in running.groups.values():
            remove_placement_group(group)
        raise
    return _start(capture, running, fused=False)


def _start(capture: Capture, running: Running, fused: bool) -> Running:
    """Every actor (`fused`: every stage, in one FusedActor), wired; the connectors started."""
    import ray

    from actors import actor, actor_name, name_prefix
    from actors.controller import CONTROLLER_NAME, ControllerActor
    from actors.fused import HOST_ID, FusedActor, Recipes
    from actors.grow import create_stream_actors, ray_spawn
    from actors.sink import SinkActor, writer_id

    pipeline, plan = capture.pipeline, running.plan
    try:
        prefix = name_prefix(capture.name)  # every actor is named: its peers look it up (restart-safe arguments)
        host = actor_name(prefix, HOST_ID)
        recipes = Recipes(host)
        spawn = recipes.spawn if fused else ray_spawn
        for spec in plan.sinks:
            options = {"num_cpus": spec.cpus, "name": actor_name(prefix, spec.id)}
            running.sinks[spec.id] = spawn(SinkActor, options, spec, writer_id(capture.name))
        made = create_stream_actors(pipeline, plan, running.groups, prefix, spawn=spawn)
        running.books.update(made.books)
        running.arbiters.update(made.arbiters)
        running.connectors.update(made.connectors)
        if fused:  # the stages are built in the host's constructor, sinks first
            running.host = actor(FusedActor, num_cpus=pipeline.connector_cpus, name=host).remote(recipes.recipes)
        wiring = []
        for book_spec in plan.books:
            venue_connectors = [c for c in plan.connectors if c.venue == book_spec.venue]
            # a fused book gets its connectors' names, which it resolves to the stages beside it
            handles = {c.id: actor_name(prefix, c.id) if fused else running.connectors[c.id] for c in venue_connectors}
            carriers = {c.id: sorted({s.symbol for s in c.subscriptions if s.table == "l2"}) for c in venue_connectors}
            wiring.append(running.books[book_spec.id].set_connectors.remote(handles, carriers))
        for arbiter_spec in plan.arbiters:
            wiring.append(running.arbiters[arbiter_spec.id].register.remote(list(arbiter_spec.inputs)))
        ray.get(wiring, timeout=capture.cluster.placement_timeout_s)
        streams = {
            s.id: {
                "venue": s.venue,
                "tables": list(s.tables),
                "symbols": list(s.symbols),
                "connectors": [c.id for c in plan.connectors if c.stream == s.id],
                # where the venue is served (the controller reads its instrument list to check run-time requests)
                "ws_base": next((c.ws_base for c in plan.connectors if c.stream == s.id), None),
                "rest_base": next((c.rest_base for c in plan.connectors if c.stream == s.id), None),
            }
            for s in capture.streams
        }
        groups = {} if fused else {c.id: f"{capture.name}:{c.placement_group}" for c in plan.connectors}
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(CONTROLLER_NAME))  # a previous capture's controller
        running.controller = actor(ControllerActor, name=CONTROLLER_NAME).remote(capture.name, prefix)
        ray.get(running.controller.register.remote(running.all(), streams, groups))
        # every service actor constructed (a bad sink configuration fails here, not mid-stream) before data flows
        services = {**running.sinks, **running.books, **running.arbiters}
        ray.get([handle.stats.remote() for handle in services.values()], timeout=capture.cluster.placement_timeout_s)
        ray.get([handle.start.remote() for handle in running.connectors.values()])
    except BaseException:
        # nothing of a start that failed half-way stays behind: a retry (or the next capture on this
        # cluster) would find its placement groups' and actors' names taken
        teardown(running)
        raise
    return running


#: how often a sink's close is tried before the driver gives up on it (each failure logged and counted)
CLOSE_ATTEMPTS = 3


def gather(refs: list[Any], timeout_s: float) -> list[Any]:
    """Every result, waiting at most `timeout_s` for all of them together (not per actor in turn); an actor
    that failed or did not answer in time gives `{"error": ...}`, so one stuck actor cannot hold the others."""
    import ray

    if not refs:
        return []
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    done = set(ready)
    out: list[Any] = []
    for ref in refs:
        if ref not in done:
            log.error("drain: no answer within %g s", timeout_s)
            out.append({"error": f"no answer within {timeout_s:g} s"})
            continue
        try:
            out.append(ray.get(ref))
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc  # a RayTaskError: what the actor raised
            log.error("drain: %r", cause)
            out.append({"error": f"{type(cause).__name__}: {cause}"})
    return out


def stop(running: Running, timeout_s: float = 60.0) -> dict[str, Any]:
    """Drain in data-flow order, then close every sink; returns every actor's final stats.

    Each stage waits at most `timeout_s` for all its actors together. The sinks are closed whatever happened
    before (a `finally`), and a close that fails is tried again (`CLOSE_ATTEMPTS`): the rows a sink still
    holds are only safe once it closed. Each sink's entry has `close_attempts` and, if it never closed,
    `close_error`.
    """
    import ray

    final: dict[str, Any] = {}
    try:
        try:  # connectors the control plane stopped at run time (unsubscribed from everything): their final stats
            retired = ray.get(running.controller.retired_connectors.remote(), timeout=10)
        except Exception:
            retired = {}
        final.update(retired)
        try:  # what run-time subscriptions started: drained, flushed and summarised with the rest
            added = ray.get(running.controller.added_actors.remote(), timeout=10)
        except Exception:
            added = {}
        for kind in ("connectors", "arbiters", "books"):
            getattr(running, kind).update(added.get(kind, {}))
        running.added_streams = list(added.get("streams", []))
        names = [n for n in running.connectors if n not in retired]
        final.update(zip(names, gather([running.connectors[n].stop.remote() for n in names], timeout_s), strict=True))
        gather([a.drain.remote() for a in running.arbiters.values()], timeout_s)
        gather([b.drain.remote() for b in running.books.values()], timeout_s)
        for group in (running.arbiters, running.books):
            names = list(group)
            final.update(zip(names, gather([group[n].stats.remote() for n in names], timeout_s), strict=True))
    finally:
        final.update(close_sinks(running, timeout_s))
    return final


def close_sinks(running: Running, timeout_s: float, attempts: int = CLOSE_ATTEMPTS) -> dict[str, Any]:
    """Close every sink, trying a failed close again up to `attempts` times; their final stats."""
    out: dict[str, Any] = {}
    todo = list(running.sinks)
    for attempt in range(1, attempts + 1):
        results = gather([running.sinks[name].close.remote() for name in todo], timeout_s)
        failed = []
        for name, result in zip(todo, results, strict=True):
            if isinstance(result, dict) and set(result) == {"error"}:
                log.error("%s: close failed (attempt %d of %d): %s", name, attempt, attempts, result["error"])
                failed.append(name)
                out[name] = {"close_attempts": attempt, "close_error": result["error"]}
            else:
                out[name] = {**result, "close_attempts": attempt}
        todo = failed
        if not todo:
            break
    for name, stats in zip(todo, gather([running.sinks[n].stats.remote() for n in todo], timeout_s), strict=True):
        if not (isinstance(stats, dict) and set(stats) == {"error"}):
            out[name] = {**stats, **out[name]}  # what it holds, for the summary, with the reason it never closed
    return out


def teardown(running: Running) -> None:
    import ray
    from ray.util.placement_group import remove_placement_group

    for handle in [*running.all().values(), running.host, running.controller]:
        if handle is not None:
            with contextlib.suppress(Exception):
                ray.kill(handle)
    for group in running.groups.values():
        with contextlib.suppress(Exception):
            remove_placement_group(group)


def book_tops(running: Running, depth: int) -> dict[str, Any]:
    """Every book actor's top `depth` levels per symbol ({book id: {symbol: (bids, asks)}}), or the exception."""
    import ray

    out: dict[str, Any] = {}
    for spec in running.plan.books:
        try:
            out[spec.id] = ray.get(running.books[spec.id].tops.remote(depth), timeout=30)
        except Exception as exc:
            out[spec.id] = exc
    return out
