"""ConnectorActor: one websocket connection (`xtrader.connector.Connector`) in a placement-group bundle."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from typing import Any

from actors import PRODUCER_CALLS, peer
from actors._route import Outputs, sink_kinds
from actors._setup import set_up_process
from xtrader import metrics
from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches, FlushPolicy
from xtrader.config import Pipeline
from xtrader.gc_tuning import tune_gc
from xtrader.plan import ConnectorSpec
from xtrader.streams_table import count_symbols
from xtrader.venues import venue
from xtrader.venues.base import Connection, Subscription

log = logging.getLogger(__name__)


class ConnectorActor:
    """Runs one connection; its batches go to the arbiter (redundant streams) or to the book and sinks.

    The connector bounds its own in-flight batches (`max_inflight`, block | lossy):
    `emit` starts the downstream calls and hands back their acknowledgement: the
    book's or arbiter's ack, and a slot in each sink's own window
    (`sink_max_inflight`), so a slow sink does not hold the others back
    (`actors._route`). A sink's dropped or failed write is an `events` row.
    Without an arbiter (redundancy 1), a `BatchArbiter` of its own still drops
    repeated updates on this connection (a venue's duplicate frames, the overlap
    of a make-before-break reconnect).

    `sinks`, `book`, `arbiter`: the peers' actor names (`actors.actor_name`, restart-safe) or handles.
    """

    def __init__(
        self,
        spec: ConnectorSpec,
        sinks: list[Any],
        book: Any,
        arbiter: Any,
        *,
        pipeline: Pipeline,
        ca_file: str | None = None,
    ) -> None:
        set_up_process()  # Arrow IPC arguments, jemalloc, warm-up (`actors._setup`)
        from xtrader.connector import Connector

        self.spec = spec
        self.outputs = Outputs(
            spec.id,
            [peer(s) for s in sinks],
            peer(book) if book is not None else None,
            peer(arbiter) if arbiter is not None else None,
            policy=pipeline.policy,
            sink_max_inflight=pipeline.sink_max_inflight,
            on_event=self._note,
            sink_kinds=sink_kinds(sinks),
            book_window_rows=pipeline.window_rows,
        )
        self.connector = Connector(
            venue(spec.venue, spec.ws_base, spec.rest_base),
            Connection(spec.url, spec.subscriptions),
            self.emit,
            FlushPolicy(pipeline.batch_rows, pipeline.batch_ms),
            # with an arbiter, a batch is answered once stored (the book's part too): the window is of rows, so
            # a restarting arbiter or book does not stop the reading (without one, see `Outputs.dispatch`)
            max_inflight=pipeline.max_inflight if arbiter is None else PRODUCER_CALLS,
            max_inflight_rows=None if arbiter is None else pipeline.window_rows,
            # downstream behind: batches grow instead of queueing as more calls (`xtrader.connector.Connector`)
            behind=functools.partial(self._behind, pipeline.max_inflight),
            flow_policy=pipeline.policy,
            ca_file=ca_file,
            backoff_base_s=pipeline.reconnect_backoff_base_s,
            backoff_cap_s=pipeline.reconnect_backoff_cap_s,
            backoff_reset_s=pipeline.reconnect_backoff_reset_s,
            rotate_after_s=pipeline.connection_lifetime_s or None,
            max_frame_bytes=pipeline.max_frame_bytes,
            transport=pipeline.ws_transport,
            book_source=spec.book_source,
            ws_snapshot_wait_s=spec.ws_snapshot_wait_s,
            snapshot_depth=spec.snapshot_depth,
            name=spec.id,
        )
        self.task: asyncio.Task[None] | None = None
        self.error: str | None = None
        self.metrics = metrics.Stats(spec.id)
        self.dedup = (
            BatchArbiter(capacity=pipeline.arbiter_capacity, ttl_ns=int(pipeline.arbiter_ttl_s * 1e9))
            if arbiter is None
            else None
        )
        self.reported: dict[str, int] = {}
        self.symbol_rows: dict[str, dict[str, int]] = {}  # table -> symbol -> rows received (the live view)
        self.stopped = False
        self.node = _node()
        self.started_by: str | None = None
        self.restart: asyncio.Task[None] | None = None  # Ray restarted it after a failure: it starts on its own
        if _restarted():  # capture again at once, not when the driver's next stats read sees it idle
            self.restart = asyncio.get_running_loop().create_task(self.start(by="restart"))

    def _behind(self, calls: int) -> float:
        """The share of the downstreams behind; all of them while the connector's own calls wait (the arbiter's
        answers, or a window full under `block`, which holds every output)."""
        return 1.0 if self.connector.inflight() >= calls else self.outputs.behind(calls)

    def emit(self, batches: Batches) -> Any:
        from xtrader.connector import SnapshotBatches

        rest = isinstance(batches, SnapshotBatches)
        if not rest:
            count_symbols(batches, self.symbol_rows)
        if self.dedup is not None and not rest:
            batches = self.dedup.filter(self.spec.id, batches, time.monotonic_ns())
        return self.outputs.dispatch(batches, rest=rest)

    def _note(self, kind: str, detail: str) -> None:
        """A sink's window dropped a batch, or a sink failed one: an `events` row of this connection."""
        self.connector.note(kind, detail)

    async def start(self, by: str = "driver") -> None:
        """Start capturing (once; a second call changes nothing). `by`: who started it, in `stats()`."""
        await self.outputs.warm()
        if self.task is None:
            tune_gc()  # the actor owns its worker process: start-up objects frozen, gen-0 collections rarer
            self.task = asyncio.get_running_loop().create_task(self._run())
            self.started_by = by

    async def _run(self) -> None:
        try:
            await self.connector.run()
        except Exception as exc:  # a fatal error: reported in stats, the actor stays up for the driver
            self.error = repr(exc)
            log.exception("connector %s stopped", self.spec.id)

    async def resync(self, symbol: str) -> None:
        await self.connector.resync(symbol)

    async def subscribe(self, symbols: list[str], tables: list[str]) -> None:
        await self.connector.subscribe([Subscription(t, s) for t in tables for s in symbols])  # type: ignore[arg-type]

    async def unsubscribe(self, symbols: list[str], tables: list[str]) -> None:
        await self.connector.unsubscribe([Subscription(t, s) for t in tables for s in symbols])  # type: ignore[arg-type]

    async def rotate(self, reason: str) -> bool:
        """Replace this connection (make-before-break) because it wins least; False when unsupported."""
        return await self.connector.rotate(reason)

    async def stop(self) -> dict[str, Any]:
        """Close the connection; `run` flushes what is buffered and waits for every downstream ack."""
        await self.connector.stop()
        self.stopped = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self.task, 60)
            with contextlib.suppress(asyncio.TimeoutError):  # the sinks' windows: every write acknowledged
                await asyncio.wait_for(self.outputs.drain(), 60)
        return self.stats()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.connector.stats())
        out["id"] = self.spec.id
        out["venue"] = self.spec.venue
        out["error"] = self.error
        out["started"] = self.task is not None
        out["started_by"] = self.started_by  # "driver", or "restart": Ray restarted it and it started itself
        out["source_id"] = self.outputs.source_id  # unique to this incarnation of the actor
        out["stopped"] = self.stopped
        out["node"] = self.node
        out["pid"] = os.getpid()  # this incarnation of the actor (a restart shows as a new one)
        out["symbol_rows"] = {table: dict(symbols) for table, symbols in self.symbol_rows.items()}
        subscriptions: dict[str, list[str]] = {}
        for sub in self.connector.connection.subscriptions:
            subscriptions.setdefault(sub.table, []).append(sub.symbol)
        out["subscriptions"] = subscriptions
        windows = [window.stats() for window in self.outputs.sink_windows]
        out["sink_windows"] = windows
        out["sink_dropped_rows"] = sum(w["dropped_rows"] for w in windows)
        out["book_window"] = self.outputs.book_window.stats()  # its l2 waiting for the book (without an arbiter)
        out["duplicates"] = self.dedup.arbiter.stats.duplicates if self.dedup is not None else 0
        out["metrics"] = self._snapshot(out)
        return out

    def _snapshot(self, stats: dict[str, Any]) -> dict[str, Any]:
        """The connector's counters as an `xtrader.metrics` snapshot (counters advance by their increase)."""
        venue_name = self.spec.venue
        for name, key in _COUNTERS:
            value = int(stats.get(key) or 0)
            increase = value - self.reported.get(key, 0)
            if increase > 0:
                self.metrics.count(name, increase, venue_name)
                self.reported[key] = value
        self.outputs.report_accounted(self.metrics)
        self.metrics.queue(int(stats.get("flow_inflight") or 0), venue_name)
        self.metrics.gauge(metrics.QUEUE_HIGH_WATER, int(stats.get("flow_high_water") or 0), venue_name)
        return self.metrics.snapshot()


_COUNTERS = (
    (metrics.MESSAGES, "messages"),
    (metrics.BYTES, "bytes"),
    (metrics.ROWS, "rows"),
    (metrics.REJECTS, "rejects"),
    (metrics.REJECTS, "refused"),  # subscriptions the venue refused (each also has an events row)
    (metrics.RECONNECTS, "reconnects"),
    (metrics.DROPPED_ROWS, "flow_dropped_rows"),
    (metrics.DROPPED_ROWS, "sink_dropped_rows"),  # one sink's window full (lossy): that sink's copy only
    (metrics.DUPLICATES, "duplicates"),
    (metrics.BUDGET_WAITS, "budget_waits"),  # resyncs waiting for the request budget (issue 13)
    (metrics.BUDGET_WAITS, "snapshot_budget_waits"),  # REST snapshots waiting for the IP's weight
    (metrics.BUDGET_WAITS, "pause_waits"),  # reconnects held back by a venue pause or its credits
)


def _restarted() -> bool:
    """Whether Ray restarted this actor after a failure (False outside Ray)."""
    import warnings

    try:
        import ray

        if not ray.is_initialized():  # get_runtime_context() would start a local Ray (and write ~/.ray)
            return False
        with warnings.catch_warnings():  # Ray's own use of a deprecated API inside this call
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:
        return False


def _node() -> str | None:
    """The IP of the node this actor runs on (None outside Ray)."""
    try:
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
    except Exception:
        return None
