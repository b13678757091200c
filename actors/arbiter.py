"""ArbiterActor: hosts `xtrader.arbiter_batches.BatchArbiter` for one redundant stream."""

from __future__ import annotations

import time
from typing import Any

from actors._route import Outputs
from xtrader.arbiter_batches import BatchArbiter
from xtrader.batch import Batches
from xtrader.flow import Policy


class ArbiterActor:
    """First arrival wins across the connections of one stream; winners go to the book and the sinks."""

    def __init__(
        self,
        stream: str,
        venue_name: str,
        sinks: list[Any],
        book: Any = None,
        *,
        capacity: int = 200_000,
        ttl_s: float = 60.0,
        rotation_s: float = 0.0,
        min_win_share: float = 0.1,
        max_inflight: int = 4,
        policy: Policy = "block",
    ) -> None:
        self.arbiter = BatchArbiter(
            capacity=capacity,
            ttl_ns=int(ttl_s * 1e9),
            rotation_s=rotation_s or None,
            min_win_share=min_win_share,
            exchange=venue_name,
            actor=f"{stream}/arbiter",
        )
        self.outputs = Outputs(f"arbiter:{stream}", sinks, book=book, max_inflight=max_inflight, policy=policy)

    async def register(self, connections: list[str]) -> None:
        for connection in connections:
            self.arbiter.register(connection)
        await self.outputs.warm()

    async def on_batch(self, connection: str, batches: Batches) -> None:
        kept = self.arbiter.filter(connection, batches, time.monotonic_ns())  # synchronous: arrival order
        await self.outputs.emit(kept)

    def rotation_due(self) -> str | None:
        """The connection to replace now (rotation), if any."""
        return self.arbiter.rotation_due(time.monotonic_ns())

    async def drain(self) -> None:
        await self.outputs.drain()

    def stats(self) -> dict[str, Any]:
        self.outputs.count_drops(self.arbiter.metrics, self.arbiter.exchange)
        return {**self.arbiter.snapshot(), "flow": self.outputs.stats()}
