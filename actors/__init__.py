"""Thin Ray wrappers around xtrader objects; every `ray.remote` option is set here, in one place.

Actors are plain classes (testable without Ray); `actor(cls)` turns one into a
Ray actor class with the options below. Restarted actors may run a call twice,
so everything downstream of a retried call is idempotent (see
`xtrader.sinkfront`).
"""

from __future__ import annotations

from typing import Any

#: ray.remote options per actor class name
OPTIONS: dict[str, dict[str, Any]] = {
    # one async actor per websocket connection; CPUs come from its placement-group bundle
    "ConnectorActor": {"max_restarts": 5, "max_task_retries": 0, "max_concurrency": 64},
    # async: forwards and awaits acks while the next batch is filtered
    "ArbiterActor": {"max_restarts": 5, "max_task_retries": 3, "max_concurrency": 256, "num_cpus": 0},
    "OrderBookActor": {"max_restarts": 5, "max_task_retries": 3, "max_concurrency": 256, "num_cpus": 0},
    # threaded with one thread: writes run in call order; retries are deduplicated by (source_id, batch_seq)
    "SinkActor": {"max_restarts": 5, "max_task_retries": 3, "max_concurrency": 1, "num_cpus": 0},
    # the control plane: named and detached, so a notebook can attach while the driver runs
    "ControllerActor": {"max_restarts": 1, "max_concurrency": 16, "num_cpus": 0, "lifetime": "detached"},
}


#: actors that serve the whole capture (no placement group of their own): they run on the node of the
#: process that creates them (the driver; for run-time streams, the controller, which the driver created)
SERVICES = frozenset({"ArbiterActor", "OrderBookActor", "SinkActor", "ControllerActor"})


def actor(cls: type, **overrides: Any) -> Any:
    """`cls` as a Ray actor class with its options from OPTIONS (plus `overrides`).

    A service actor (SERVICES) is placed on the caller's node (soft: elsewhere if that node is gone),
    never left to Ray's default policy, which spreads actors over the least used nodes: on an
    autoscaling cluster that is a node added for connectors, and any actor there, even one needing no
    CPU, keeps the node busy, so the autoscaler could never remove it once its connectors stopped.
    """
    import ray

    options = {**OPTIONS[cls.__name__], **overrides}
    if cls.__name__ in SERVICES and "scheduling_strategy" not in options:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=True
        )
    return ray.remote(**options)(cls)
