"""Thin Ray wrappers around xtrader objects; every `ray.remote` option is set here, in one place.

Actors are plain classes (testable without Ray); `actor(cls)` turns one into a
Ray actor class with the options below. Restarted actors may run a call twice,
so everything downstream of a retried call is idempotent (see
`xtrader.sinkfront`).

Restarts: Ray restarts an actor by running its constructor again with the arguments it was created
with, and it does not keep an argument that lives in the object store, nor what an argument refers to
(an actor handle is such a reference) for that. So constructors take plain values only: specs, ids
and the *names* of their peer actors (`actor_name`), which they look up (`peer`). Every actor of a
capture is named `<prefix><actor id>`, the prefix unique to the capture's start (`name_prefix`).
"""

from __future__ import annotations

import uuid
from typing import Any

#: restarts of a pipeline actor: unlimited. A capture runs for weeks, and every kill (OOM, node loss, a deploy)
#: must be survived, not only the first five; a crash loop shows in the restart counters and events.
RESTARTS = -1

#: the most calls one producer (a connector, an arbiter) keeps open at an order-book or arbiter actor: the call bound
#: of its window, which `pipeline.window_rows` bounds first in rows (`actors._route.Outputs.book_window`, the
#: connector's window to its arbiter). Those actors have a slot for each (`CONSUMER_SLOTS`), so none of these
#: calls waits in Ray's queue
PRODUCER_CALLS = 1_024
#: producers an order-book or arbiter actor has a slot for at that bound (a venue's connectors and arbiters)
PRODUCERS = 64
#: `max_concurrency` of the order-book and arbiter actors: a slot for every call their producers can have open, and
#: for control calls (stats, tops, drain). These actors answer a call once its rows are stored, so a slow sink keeps
#: calls open; with more open than slots, Ray queues the rest and gives a freed slot to a call just arriving, not to
#: the oldest queued one, which can wait there for seconds while its producer's later calls, held by the actor's
#: reorder buffer for it, take every slot (a false gap once the reorder timeout gives it up:
#: tests/cluster/test_book_backlog.py)
CONSUMER_SLOTS = PRODUCER_CALLS * PRODUCERS + 64

_CONSUMER = {"max_restarts": RESTARTS, "max_task_retries": 3, "num_cpus": 0}

#: ray.remote options per actor class name
OPTIONS: dict[str, dict[str, Any]] = {
    # one async actor per websocket connection; CPUs come from its placement-group bundle
    "ConnectorActor": {"max_restarts": RESTARTS, "max_task_retries": 0, "max_concurrency": 64},
    # async: forwards and awaits acks while the next batch is filtered
    "ArbiterActor": {**_CONSUMER, "max_concurrency": CONSUMER_SLOTS},
    "OrderBookActor": {**_CONSUMER, "max_concurrency": CONSUMER_SLOTS},
    # threaded with one thread: writes run in call order; retries are deduplicated by (source_id, batch_seq)
    "SinkActor": {"max_restarts": RESTARTS, "max_task_retries": 3, "max_concurrency": 1, "num_cpus": 0},
    # a whole capture in one process (`pipeline.fused`, `actors.fused`): its calls are the stages' calls, so it
    # has their slots; a failure restarts every stage with the recipes it was made with
    "FusedActor": {"max_restarts": RESTARTS, "max_task_retries": 0, "max_concurrency": CONSUMER_SLOTS},
    # the control plane: named and detached, so a notebook can attach while the driver runs
    "ControllerActor": {"max_restarts": 1, "max_concurrency": 16, "num_cpus": 0, "lifetime": "detached"},
}


#: methods that run in a concurrency group (a thread) of their own, per actor class: (group, methods). A sink writes
#: one batch at a time, in order; what the driver asks it (its stats, every 2 s, with a 5 s timeout) must not wait
#: behind a backlog of writes, or the live view, /metrics and the capture's settling see its counts frozen exactly
#: while it is behind (tests/cluster/test_sink_control.py). These methods take the sink's lock, so they wait at most
#: for the write in progress.
METHOD_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "SinkActor": ("control", ("stats", "accepted", "recent_events")),
}


def name_prefix(capture: str) -> str:
    """The prefix of the actor names of one capture start: its name plus a random suffix (two captures,
    or a capture and its predecessor's actors still being killed, never share a name)."""
    return f"xtrader:{capture}:{uuid.uuid4().hex[:8]}:"


def actor_name(prefix: str, actor_id: str) -> str:
    """The Ray actor name of the actor `actor_id` ("sink/parquet", "book/binance", ...) of a capture."""
    return f"{prefix}{actor_id}"


def peer(ref: Any) -> Any:
    """The handle of a peer actor given by name (a plain string, restart-safe), or `ref` itself (a handle,
    or a stand-in outside Ray).

    A stage of a fused capture (`actors.fused`) has no actor of its own: in its host's process its name is a
    `LocalHandle`; anywhere else, a `FusedPeer` whose calls go through the host.
    """
    if not isinstance(ref, str):
        return ref
    import ray

    from actors.fused import LOCAL, FusedPeer, host_name

    local = LOCAL.get(ref)
    if local is not None:
        return local
    try:
        return ray.get_actor(ref)
    except ValueError:
        host = host_name(ref)
        if host is None or host == ref:
            raise
        ray.get_actor(host)  # ValueError too when there is no such host
        return FusedPeer(host, ref)


#: actors that serve the whole capture (no placement group of their own): they run on the node of the
#: process that creates them (the driver; for run-time streams, the controller, which the driver created)
SERVICES = frozenset({"ArbiterActor", "OrderBookActor", "SinkActor", "ControllerActor", "FusedActor"})


def actor(cls: type, **overrides: Any) -> Any:
    """`cls` as a Ray actor class with its options from OPTIONS (plus `overrides`).

    A service actor (SERVICES) is placed on the caller's node, never left to Ray's default policy, which
    spreads actors over the least used nodes: on an autoscaling cluster that is a node added for
    connectors, and any actor there, even one needing no CPU, keeps the node busy, so the autoscaler could
    never remove it once its connectors stopped; and a node lost with its connectors then takes the
    stream's book or arbiter with it, which no redundant connection covers (tests/cluster/test_node_loss.py).
    Without CPUs (`pipeline.service_cpus` 0, the default) it is pinned there (`soft=False`): Ray's soft
    affinity put the third 0-CPU actor on another node of a 1-CPU head whose CPU a connector bundle held,
    and it restarts there too. With CPUs it is soft (elsewhere when the caller's node lacks them).
    """
    import ray

    options = {**OPTIONS[cls.__name__], **overrides}
    if cls.__name__ in METHOD_GROUPS:
        group, methods = METHOD_GROUPS[cls.__name__]
        options.setdefault("concurrency_groups", {group: 1})
        for method in methods:  # marks the plain class's function (what `ray.remote` reads), idempotent
            ray.method(concurrency_group=group)(getattr(cls, method))
    if cls.__name__ in SERVICES and "scheduling_strategy" not in options:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=bool(options.get("num_cpus"))
        )
    return ray.remote(**options)(cls)
