"""Start a stream at run time: its placement groups (not waited for), connector actors, arbiter and book.

Used by the ControllerActor for a `subscribe` no running connection can take (a venue no stream
captures, other tables, another redundancy, or a full connection). The placement groups may pend
(the cluster lacks the CPUs; an autoscaler adds nodes): `Added.pending` says how many CPUs each
connector waits for, and `wire_and_start` runs once they are placed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from xtrader.config import Capture, Pipeline
from xtrader.plan import Endpoint, Plan, build_plan


@dataclass
class Added:
    """What one run-time stream created."""

    stream: dict[str, Any]  # the Stream, as a dict (for the driver's summary)
    plan: Plan
    groups: dict[str, Any] = field(default_factory=dict)  # placement group id -> handle
    actors: dict[str, Any] = field(default_factory=dict)  # actor id -> handle (connectors, arbiter, a new book)
    pending: dict[str, float] = field(default_factory=dict)  # connector id -> CPUs its group waits for


def plan_stream(base: Capture, stream: dict[str, Any], endpoints: dict[str, Endpoint] | None) -> tuple[Capture, Plan]:
    """The capture `base` with only `stream`, validated, and its plan (ConfigError naming what is wrong)."""
    capture = Capture.model_validate({**base.model_dump(), "streams": [stream]})
    return capture, build_plan(capture, endpoints)


@dataclass
class StreamActors:
    """The actors `create_stream_actors` made, by id."""

    books: dict[str, Any] = field(default_factory=dict)
    arbiters: dict[str, Any] = field(default_factory=dict)
    connectors: dict[str, Any] = field(default_factory=dict)


def ray_spawn(cls: type, options: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """An actor of `cls` with `options` (`actors.actor`), constructed with `args`: its handle."""
    from actors import actor

    return actor(cls, **options).remote(*args, **kwargs)


def create_stream_actors(
    pipeline: Pipeline,
    plan: Plan,
    groups: dict[str, Any],
    prefix: str,
    books: Iterable[str] = (),
    spawn: Callable[..., Any] = ray_spawn,
) -> StreamActors:
    """The order-book (for a venue whose book is not among the running `books`, by id), arbiter and connector
    actors of `plan`, the connectors in their placement `groups` (by id). Created, not wired or started.
    Used by the driver at start and by `start_stream` at run time.

    Every actor is named `actor_name(prefix, id)` and gets plain values only: its spec and the names of its
    peers (the sinks of `plan`, named so by whoever created them), which it looks up. Ray restarts it with
    those arguments, and nothing they refer to can go out of scope.

    `spawn(cls, options, *args, **kwargs)` makes each (`ray_spawn`; a fused capture's `actors.fused.Recipes`,
    where `groups` is empty: no connector has a placement group of its own).
    """
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from actors import actor_name
    from actors.arbiter import ArbiterActor
    from actors.book import OrderBookActor
    from actors.connector import ConnectorActor

    made = StreamActors()
    flow = {
        "max_inflight": pipeline.max_inflight,
        "policy": pipeline.policy,
        "sink_max_inflight": pipeline.sink_max_inflight,
    }
    sinks = [actor_name(prefix, spec.id) for spec in plan.sinks]
    book_ids = set(books) | {spec.id for spec in plan.books}
    for book_spec in plan.books:
        if book_spec.id in books:
            continue
        connectors = [c for c in plan.connectors if c.venue == book_spec.venue]
        made.books[book_spec.id] = spawn(
            OrderBookActor,
            {"num_cpus": book_spec.cpus, "name": actor_name(prefix, book_spec.id)},
            book_spec.venue,
            book_spec.venue,
            sinks,
            connectors={c.id: actor_name(prefix, c.id) for c in connectors},
            carriers={c.id: sorted({s.symbol for s in c.subscriptions if s.table == "l2"}) for c in connectors},
            depth=book_spec.depth,
            snapshot_interval_s=book_spec.snapshot_interval_s,
            gap_hold_s=book_spec.gap_hold_s,
            **flow,
        )

    def book_of(venue: str, tables: Iterable[str]) -> str | None:
        book_id = f"book/{venue}"
        return actor_name(prefix, book_id) if "l2" in tables and book_id in book_ids else None

    for arbiter_spec in plan.arbiters:
        made.arbiters[arbiter_spec.id] = spawn(
            ArbiterActor,
            {"num_cpus": arbiter_spec.cpus, "name": actor_name(prefix, arbiter_spec.id)},
            arbiter_spec.stream,
            arbiter_spec.venue,
            sinks,
            book_of(arbiter_spec.venue, arbiter_spec.tables),
            inputs=list(arbiter_spec.inputs),
            capacity=arbiter_spec.capacity,
            ttl_s=arbiter_spec.ttl_s,
            rotation_s=arbiter_spec.rotation_interval_s,
            min_win_share=arbiter_spec.rotation_min_win_share,
            book_window_rows=pipeline.window_rows,
            **flow,
        )
    arbiter_of = {i: a.id for a in plan.arbiters for i in a.inputs}
    for spec in plan.connectors:
        options: dict[str, Any] = {"num_cpus": spec.cpus, "name": actor_name(prefix, spec.id)}
        if groups:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                groups[spec.placement_group], placement_group_bundle_index=spec.bundle_index
            )
        arbiter = arbiter_of.get(spec.id)
        made.connectors[spec.id] = spawn(
            ConnectorActor,
            options,
            spec,
            sinks,
            book_of(spec.venue, plan.targets(spec.id)),
            actor_name(prefix, arbiter) if arbiter is not None else None,
            pipeline=pipeline,
        )
    return made


def start_stream(capture: Capture, plan: Plan, prefix: str, books: Iterable[str]) -> Added:
    """Create the placement groups and actors of a one-stream plan (prefix: the capture's actor-name prefix;
    books: the ids of the running book actors; a venue without one gets it). Nothing is started: see
    `wire_and_start`."""
    from ray.util.placement_group import placement_group

    added = Added(stream=capture.streams[0].model_dump(), plan=plan)
    for group in plan.placement_groups:
        added.groups[group.id] = placement_group(
            [dict(b) for b in group.bundles], strategy=group.strategy, name=f"{capture.name}:{group.id}"
        )
    made = create_stream_actors(capture.pipeline, plan, added.groups, prefix, books)
    added.actors.update({**made.books, **made.arbiters, **made.connectors})
    cpus = {group.id: group.cpus for group in plan.placement_groups}
    for spec in plan.connectors:
        added.pending[spec.id] = cpus[spec.placement_group]
    return added


async def wire_and_start(
    added: Added, book: Any, venue_connectors: dict[str, Any], carriers: dict[str, list[str]]
) -> None:
    """Once the placement groups are placed: tell the venue's book every connector of the venue, register the
    arbiter's inputs, start the connectors (each leaves `pending` as it starts)."""
    for group in added.groups.values():
        await group.ready()
    if book is not None:
        await book.set_connectors.remote(venue_connectors, carriers)
    for arbiter_spec in added.plan.arbiters:
        await added.actors[arbiter_spec.id].register.remote(list(arbiter_spec.inputs))
    for spec in added.plan.connectors:
        await added.actors[spec.id].start.remote()
        added.pending.pop(spec.id, None)
