"""Bounded in-flight calls to one downstream actor: at most `max_inflight` unacknowledged batches.

The accounting is `xtrader.flow.FlowGate` (block: wait for a slot; lossy:
drop and count); this only awaits the ObjectRefs and frees the slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from xtrader.flow import FlowGate, Policy

log = logging.getLogger(__name__)


class Downstream:
    """One producer's window onto one downstream actor method."""

    def __init__(self, max_inflight: int = 4, policy: Policy = "block") -> None:
        self.gate = FlowGate(max_inflight, policy)
        self.tasks: set[asyncio.Task[None]] = set()
        self.failures = 0
        #: told of every failed call (after it is counted)
        self.on_failure: Callable[[BaseException], None] | None = None

    async def send(self, rows: int, call: Callable[[], Any], precious: bool = False) -> bool:
        """Start `call()` (a `.remote(...)` returning an ObjectRef) once a slot is free; False if dropped."""
        if not await self.gate.acquire(rows, precious):
            return False
        ref = call()
        task = asyncio.get_running_loop().create_task(self._ack(ref))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _ack(self, ref: Any) -> None:
        ok = True
        try:
            await ref
        except Exception as exc:  # a downstream failure must not kill the producer; it is counted
            ok = False
            self.failures += 1
            log.exception("downstream call failed")
            if self.on_failure is not None:
                self.on_failure(exc)
        self.gate.release(ok)

    async def drain(self) -> None:
        """Wait until every call sent is acknowledged."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def stats(self) -> dict[str, int]:
        out = self.gate.stats.as_dict()
        out["failures"] = self.failures
        return out
