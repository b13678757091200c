"""ArbiterActor: hosts `xtrader.arbiter_batches.BatchArbiter` for one redundant stream."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Hashable
from typing import Any

from actors import peer
from actors._inorder import InOrder, Settled
from actors._route import Key, Outputs, sink_kinds
from actors._setup import set_up_process
from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches
from xtrader.flow import Policy

log = logging.getLogger(__name__)

#: how long a (re)started arbiter waits for its downstream actors to say what they took from it
REBUILD_TIMEOUT_S = 60.0


class ArbiterActor:
    """First arrival wins across the connections of one stream; winners go to the book and the sinks.

    A call returns once its output is acknowledged by every sink and by the book (so a connector's
    acknowledgement means stored): an arbiter killed before that has the call retried by Ray.

    The output of a numbered input call is written under a key derived from the call's
    (source, seq) (`actors._route`), so Ray's retry of a call on the restarted actor is a repeat.

    Restarts: before it takes its first input, the arbiter asks its sinks and its book which rows they
    took from this stream's arbiter lately (`xtrader.recent`) and remembers their keys as passed on, so
    a late copy of an update a killed predecessor passed on is a duplicate here too (docs/guide.md,
    "Arbiter restarts"). On a first start they took nothing and the answer is empty.

    Args:
        stream / venue_name: the stream and its venue; sinks, book: SinkActor and OrderBookActor names
            (`actors.actor_name`) or handles; inputs: the stream's connection ids (registered at once,
            so a restarted arbiter knows them; `register` adds more).
    """

    def __init__(
        self,
        stream: str,
        venue_name: str,
        sinks: list[Any],
        book: Any = None,
        *,
        inputs: list[str] | None = None,
        capacity: int = 200_000,
        ttl_s: float = 60.0,
        rotation_s: float = 0.0,
        min_win_share: float = 0.1,
        max_inflight: int = 4,
        policy: Policy = "block",
        sink_max_inflight: int | None = None,
        book_window_rows: int | None = None,
    ) -> None:
        set_up_process()  # Arrow IPC arguments, jemalloc, warm-up (`actors._setup`)
        self.arbiter = BatchArbiter(
            capacity=capacity,
            ttl_ns=int(ttl_s * 1e9),
            rotation_s=rotation_s or None,
            min_win_share=min_win_share,
            exchange=venue_name,
            actor=f"{stream}/arbiter",
        )
        for connection in inputs or ():
            self.arbiter.register(connection)
        self.outputs = Outputs(
            f"arbiter:{stream}",
            [peer(s) for s in sinks],
            book=peer(book) if book is not None else None,
            max_inflight=max_inflight,
            policy=policy,
            sink_max_inflight=sink_max_inflight,
            sink_kinds=sink_kinds(sinks),
            book_window_rows=book_window_rows,  # a restarting book does not stop the trades (docs/guide.md)
        )
        self.inorder: InOrder[tuple[str, Batches, Key | None, Hashable]] = InOrder(self._process)
        #: each numbered call is answered once its output is stored (or its loss recorded)
        self.settled = Settled()
        self.rebuilding: asyncio.Future[None] | None = None
        self.rebuilt: dict[str, int] = {}  # keys learned from downstream at start, per table
        self.rebuild_failures = 0

    async def register(self, connections: list[str]) -> None:
        for connection in connections:
            self.arbiter.register(connection)
        await self.outputs.warm()

    async def on_batch(
        self,
        connection: str,
        batches: Batches,
        source: str | None = None,
        seq: int | None = None,
        dropped: tuple[int, ...] = (),
    ) -> None:
        """One connector batch; (source, seq): its number from that connector (processed in that order).

        `dropped`: numbers that connector will never send (its lossy policy): their keys are skipped.
        """
        if self.rebuilding is None:
            self.rebuilding = asyncio.ensure_future(self._rebuild())
        await self.rebuilding  # no input is filtered before the keys passed on before a restart are known
        key = (source, seq) if source is not None and seq is not None else None
        if source is not None:
            for number in dropped:
                out = self.outputs.derived((source, number))
                self.outputs.skip(out, sinks=True, book=True)
        token: Hashable = key if key is not None else object()
        await self.settled.answer(token, self.inorder.push(source, seq, (connection, batches, key, token), dropped))

    async def _rebuild(self) -> None:
        """Remember the keys of the rows the sinks (trades, bbo) and the book (l2) took from this stream's
        arbiter lately: a killed predecessor passed them on."""
        prefix = f"{self.outputs.name}|"  # the arbiter's derived sources (`Outputs.derived`)
        handles = [*self.outputs.sinks, *([self.outputs.book] if self.outputs.book is not None else [])]
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(h.recent.remote(prefix) for h in handles)), REBUILD_TIMEOUT_S
            )
        except Exception as exc:  # a downstream actor that cannot answer: go on as a fresh arbiter, counted
            self.rebuild_failures += 1
            log.warning("%s: could not learn what downstream took before a restart: %r", prefix, exc)
            return
        now = time.monotonic_ns()
        for answer in answers:
            for table, rows in answer.items():
                self.rebuilt[table] = self.rebuilt.get(table, 0) + self.arbiter.seed(table, rows, now)

    async def _process(self, ready: list[tuple[str, Batches, Key | None, Hashable]]) -> None:
        await self.settled.run([item[-1] for item in ready], self._emit(ready))

    async def _emit(self, ready: list[tuple[str, Batches, Key | None, Hashable]]) -> None:
        now = time.monotonic_ns()
        kept = [self.arbiter.filter(connection, batches, now) for connection, batches, _, _ in ready]
        # the book's order is fixed here, before any await lets another call's batches through
        tickets = [self.outputs.book_ticket(batches) for batches in kept]
        for batches, ticket, (_, _, key, token) in zip(kept, tickets, ready, strict=True):
            self.settled.when(token, await self.outputs.emit(batches, book_seq=ticket, key=key))

    def rotation_due(self) -> str | None:
        """The connection to replace now (rotation), if any."""
        return self.arbiter.rotation_due(time.monotonic_ns())

    async def drain(self) -> None:
        await self.inorder.flush()
        await self.outputs.drain()

    def stats(self) -> dict[str, Any]:
        self.outputs.count_drops(self.arbiter.metrics, self.arbiter.exchange)
        self.outputs.report_accounted(self.arbiter.metrics)
        return {
            **self.arbiter.snapshot(),
            "flow": self.outputs.stats(),
            "order": self.inorder.stats(),
            "rebuilt": dict(self.rebuilt),
            "rebuild_failures": self.rebuild_failures,
            "pid": os.getpid(),  # this incarnation of the actor (a restart shows as a new one)
        }
