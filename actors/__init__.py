"""Thin Ray wrappers around xtrader objects; every `ray.remote` option is set here, in one place.

Actors are plain classes (testable without Ray); `actor(cls)` turns one into a
Ray actor class with the options below. Restarted actors may run a call twice,
so everything downstream of a retried call is idempotent (see
`xtrader.sinkfront`).
"""

from __future__ import annotations

from typing import Any

#: restarts of a pipeline actor: unlimited. A capture runs for weeks, and every kill (OOM, node loss, a deploy)
#: must be survived, not only the first five; a crash loop shows in the restart counters and events.
RESTARTS = -1

#: ray.remote options per actor class name
OPTIONS: dict[str, dict[str, Any]] = {
    # one async actor per websocket connection; CPUs come from its placement-group bundle
    "ConnectorActor": {"max_restarts": RESTARTS, "max_task_retries": 0, "max_concurrency": 64},
    # async: forwards and awaits acks while the next batch is filtered
    "ArbiterActor": {"max_restarts": RESTARTS, "max_task_retries": 3, "max_concurrency": 256, "num_cpus": 0},
    "OrderBookActor": {"max_restarts": RESTARTS, "max_task_retries": 3, "max_concurrency": 256, "num_cpus": 0},
    # threaded with one thread: writes run in call order; retries are deduplicated by (source_id, batch_seq)
    "SinkActor": {"max_restarts": RESTARTS, "max_task_retries": 3, "max_concurrency": 1, "num_cpus": 0},
    # the control plane: named and detached, so a notebook can attach while the driver runs
    "ControllerActor": {"max_restarts": 1, "max_concurrency": 16, "num_cpus": 0, "lifetime": "detached"},
}


def actor(cls: type, **overrides: Any) -> Any:
    """`cls` as a Ray actor class with its options from OPTIONS (plus `overrides`)."""
    import ray

    return ray.remote(**{**OPTIONS[cls.__name__], **overrides})(cls)
