"""OrderBookActor: hosts `xtrader.bookservice.BookService` for one stream."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Hashable
from typing import Any

from actors import peer
from actors._inorder import InOrder, Settled
from actors._route import Key, Outputs, Skip, sink_kinds
from actors._setup import set_up_process
from xtrader.batch import Batches
from xtrader.bookservice import GAP_HOLD_S, BookService
from xtrader.flow import Policy
from xtrader.recent import RecentKeys
from xtrader.reorder import TIMEOUT_S
from xtrader.venues import venue


class OrderBookActor:
    """Books of one stream: forwards l2 rows and events to the sinks, asks connectors to resync.

    The output of a numbered input is written under keys derived from the input's origin
    (`actors._route`): its (source, seq), or the arbiter's derived key it came with; so Ray's
    retry of a call on the restarted actor is a repeat at the sinks. A call returns once its rows are
    acknowledged by every sink: a book killed before that has the call retried by Ray, nothing is lost.

    Args:
        stream: stream id; venue_name: the venue; sinks: SinkActor names (`actors.actor_name`) or handles.
        connectors / carriers: connection id -> its ConnectorActor's name, and -> its l2 symbols (where
            resync requests go), as the plan has them: a restarted book is wired again from these
            (`set_connectors` replaces them at run time).
        depth / snapshot_interval_s: the book_snapshots table.
        gap_hold_s: how long a book that several connections carry waits for a missing update before it
            resyncs (`pipeline.book_gap_hold_s`).
    """

    def __init__(
        self,
        stream: str,
        venue_name: str,
        sinks: list[Any],
        *,
        connectors: dict[str, str] | None = None,
        carriers: dict[str, list[str]] | None = None,
        depth: int = 20,
        snapshot_interval_s: float = 1.0,
        max_inflight: int = 4,
        policy: Policy = "block",
        sink_max_inflight: int | None = None,
        reorder_timeout_s: float = TIMEOUT_S,
        gap_hold_s: float = GAP_HOLD_S,
    ) -> None:
        set_up_process()  # Arrow IPC arguments, jemalloc, warm-up (`actors._setup`)
        self.service = BookService.for_venue(
            venue(venue_name), depth=depth, snapshot_interval_s=snapshot_interval_s, gap_hold_s=gap_hold_s
        )
        self.outputs = Outputs(
            f"book:{stream}",
            [peer(s) for s in sinks],
            max_inflight=max_inflight,
            policy=policy,
            sink_max_inflight=sink_max_inflight,
            sink_kinds=sink_kinds(sinks),
        )
        self.connectors: dict[str, Any] = dict(connectors or {})  # a name is looked up when first needed
        if carriers is not None:
            self.service.set_carriers(carriers)
        self.resync_failures = 0
        #: the l2 messages taken from an arbiter lately (a restarted arbiter's rebuild, `xtrader.recent`)
        self.recent_keys = RecentKeys()
        self.ticker: asyncio.Task[None] | None = None
        # each producer's l2 in the order it sent it (a batch overtaken on the way is a false gap)
        self.inorder: InOrder[tuple[str, Batches, bool, Key | None, Hashable]] = InOrder(
            self._process, reorder_timeout_s
        )
        #: each numbered call is answered once its rows are stored (or their loss recorded)
        self.settled = Settled()

    async def set_connectors(self, connectors: dict[str, Any], carriers: dict[str, list[str]] | None = None) -> None:
        """connection id -> ConnectorActor handle, and -> its l2 symbols (where resync requests go); warms the sinks."""
        self.connectors = dict(connectors)
        self.service.set_carriers(carriers if carriers is not None else {c: [] for c in connectors})
        await self.outputs.warm()

    async def on_batch(
        self,
        connection: str,
        batches: Batches,
        rest: bool = False,
        source: str | None = None,
        seq: int | None = None,
        dropped: tuple[int, ...] = (),
        origin: Key | None = None,
        origin_skipped: tuple[Skip, ...] = (),
        floor: int = 0,
    ) -> None:
        """One producer batch; (source, seq): its number from that producer (applied in that order).

        `origin`: the key its output derives from (the arbiter's derived key; else (source, seq));
        `origin_skipped`: origins that will never come (and `dropped` numbers, without an arbiter).
        `floor`: every number of `source` below it was acknowledged already (a restarted book does not wait
        for them).
        """
        if origin is not None:
            self.recent_keys.add(origin[0], "l2", batches.l2_messages)
        skipped = list(origin_skipped)
        if origin is None and source is not None and seq is not None:
            origin = (source, seq)
            skipped.extend((source, number, number) for number in dropped)
        for origin_source, low, high in skipped:  # the REST and data keys of each (see `_keys`)
            self.outputs.skip_range(f"{self.outputs.name}|{origin_source}", 2 * low, 2 * high + 1)
        token: Hashable = (source, seq) if source is not None and seq is not None else object()
        await self.settled.answer(
            token, self.inorder.push(source, seq, (connection, batches, rest, origin, token), dropped, floor)
        )

    async def _process(self, ready: list[tuple[str, Batches, bool, Key | None, Hashable]]) -> None:
        await self.settled.run([item[-1] for item in ready], self._apply(ready))

    async def _apply(self, ready: list[tuple[str, Batches, bool, Key | None, Hashable]]) -> None:
        # synchronous, for every due batch before the first await: the books see them in order
        outs = [self.service.on_batch(connection, batches, rest=rest) for connection, batches, rest, _, _ in ready]
        for out in outs:
            self._resync(out.resyncs)
        for out, (_, batches, _, origin, token) in zip(outs, ready, strict=True):
            rest_key, data_key = _keys(self.outputs.derived(origin)) if origin is not None else (None, None)
            writes = []
            if out.l2_rest is not None:
                writes.append(await self.outputs.write_soon({"l2": out.l2_rest}, origin="rest", key=rest_key))
            elif rest_key is not None:
                self.outputs.skip(rest_key)
            tables = {"l2": out.l2} if out.l2 is not None else {}
            if out.events is not None:
                tables["events"] = out.events
            if tables:  # receipt clocks: sink code latency
                writes.append(await self.outputs.write_soon(tables, anchor=batches.anchor, key=data_key))
            elif data_key is not None:
                self.outputs.skip(data_key)
            self.settled.when(token, writes)
        self._start_ticker()

    def _resync(self, requests: list[tuple[str, str]]) -> None:
        for connection, symbol in requests:
            handle = self.connectors.get(connection)  # the service routes to a connector that carries the symbol
            if isinstance(handle, str):  # a name (constructor): its handle, once
                handle = self.connectors[connection] = peer(handle)
            if handle is not None:
                handle.resync.remote(symbol)
            else:
                self.resync_failures += 1

    def _start_ticker(self) -> None:
        if self.ticker is None:
            self.ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.service.snapshot_interval_ns / 1e9 or 1.0))
            await self.tick()

    async def tick(self, force: bool = False) -> None:
        snapshots, events, resyncs = self.service.tick(force)
        self._resync(resyncs)
        tables = {
            name: batch for name, batch in (("book_snapshots", snapshots), ("events", events)) if batch is not None
        }
        if tables:
            await self.outputs.write(tables)

    async def drain(self) -> None:
        """Stop the periodic snapshots, write a last one, wait for every sink ack."""
        await self.inorder.flush()
        if self.ticker is not None:
            self.ticker.cancel()
            self.ticker = None
        await self.tick(force=True)
        await self.outputs.drain()

    def recent(self, prefix: str) -> dict[str, Any]:
        """Key columns of the l2 messages taken lately from origins starting with `prefix` (a restarted arbiter)."""
        return self.recent_keys.get(prefix)

    def tops(self, depth: int = 20) -> dict[str, Any]:
        return self.service.tops(depth)

    def stats(self) -> dict[str, Any]:
        self.outputs.count_drops(self.service.metrics, self.service.exchange)
        self.outputs.report_accounted(self.service.metrics)
        return {
            **self.service.stats(),
            "flow": self.outputs.stats(),
            "resync_failures": self.resync_failures,
            "order": self.inorder.stats(),
            "ts": time.time(),
            "pid": os.getpid(),  # this incarnation of the actor (a restart shows as a new one)
        }


def _keys(derived: Key) -> tuple[Key, Key]:
    """The sink keys of one input's output: its REST rows (seq * 2) and the rest (seq * 2 + 1)."""
    source, seq = derived
    return (source, 2 * seq), (source, 2 * seq + 1)
