"""Bounded in-flight calls to one downstream actor: at most `max_inflight` unacknowledged batches.

The accounting is `xtrader.flow.FlowGate` (block: wait for a slot; lossy:
drop and count); this awaits the ObjectRefs and frees the slots.

A call that fails because its actor died or is restarting (Ray's actor errors, after Ray's own
`max_task_retries`) or because the sink could not store it (`SinkError`) is sent again, with the
same arguments (every downstream call is idempotent: the sinks by (source_id, batch_seq), the
order-book and arbiter actors by their producer's numbers), with capped backoff for up to
`retry_s`; only then is it given up, counted in `failures` and told to `on_failure`, whose owner
records it (an `events` row with the batch's key and the rows counted as accounted). Any other
error is given up at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from xtrader.flow import FlowGate, Policy
from xtrader.retry import backoff

log = logging.getLogger(__name__)

#: how long a failed downstream call is sent again before it is given up (a restart on a busy node is slow)
RETRY_S = 120.0

#: exception class names (anywhere in the error's class hierarchy) worth sending the call again for
RETRYABLE = frozenset(
    {
        "RayActorError",
        "ActorDiedError",
        "ActorUnavailableError",
        "ActorUnschedulableError",
        "ObjectLostError",
        "OwnerDiedError",
        "GetTimeoutError",
        "SinkError",
    }
)


def retryable(exc: BaseException) -> bool:
    """True for a failure a later attempt can get past: a dead or restarting actor, a sink that cannot write.

    Ray wraps an actor method's exception in a class that also derives from it (`RayTaskError(SinkError)`),
    so the class names of the whole hierarchy are checked; then its `cause`.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "SinkClosed" in names:  # a sink closed for good (the capture is stopping): sending again cannot help
        return False
    if names & RETRYABLE:
        return True
    cause = getattr(exc, "cause", None)
    return isinstance(cause, BaseException) and cause is not exc and retryable(cause)


class Downstream:
    """One producer's window onto one downstream actor method.

    Args:
        max_inflight / policy / max_rows: the window (`xtrader.flow.FlowGate`).
        retry_s: how long a retryable failure is retried before the call is given up.
        sleep: between attempts (injectable for tests).
    """

    def __init__(
        self,
        max_inflight: int = 4,
        policy: Policy = "block",
        retry_s: float = RETRY_S,
        sleep: Callable[[float], Any] = asyncio.sleep,
        max_rows: int | None = None,
    ) -> None:
        self.gate = FlowGate(max_inflight, policy, max_rows)
        self.tasks: set[asyncio.Task[bool]] = set()
        self.failures = 0
        self.retries = 0
        self.last_error: BaseException | None = None
        self.retry_s = retry_s
        self.sleep = sleep
        #: told of every call given up (after it is counted)
        self.on_failure: Callable[[BaseException], None] | None = None

    async def send(self, rows: int, call: Callable[[], Any], precious: bool = False) -> asyncio.Task[bool] | None:
        """Start `call()` (a `.remote(...)` returning an ObjectRef) once a slot is free.

        `call` may be called again to retry, and must then send the very same request. Returns the
        task awaiting its acknowledgement (True: acknowledged; False: given up, already reported),
        or None when the lossy policy dropped the batch.
        """
        if not await self.gate.acquire(rows, precious):
            return None
        try:
            ref = call()
        except BaseException:
            self.gate.release(False, rows)
            raise
        task = asyncio.get_running_loop().create_task(self._ack(ref, call, rows))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _ack(self, ref: Any, call: Callable[[], Any], rows: int) -> bool:
        deadline = time.monotonic() + self.retry_s
        delays = backoff(0.05, 2.0)
        ok = True
        while True:
            try:
                await ref
                break
            except Exception as exc:  # a downstream failure must not kill the producer
                delay = next(delays)
                if retryable(exc) and time.monotonic() + delay < deadline:
                    self.retries += 1
                    if self.retries == 1 or self.retries % 100 == 0:
                        log.warning("downstream call failed (%r); sending it again (%d retries)", exc, self.retries)
                    await self.sleep(delay)
                    try:
                        ref = call()
                        continue
                    except Exception as again:  # could not even be sent: given up below
                        exc = again
                ok = False
                self.failures += 1
                self.last_error = exc
                log.error("downstream call given up: %r", exc)
                if self.on_failure is not None:
                    self.on_failure(exc)
                break
        self.gate.release(ok, rows)
        return ok

    async def drain(self) -> None:
        """Wait until every call sent is acknowledged (or given up)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def stats(self) -> dict[str, int]:
        out = self.gate.stats.as_dict()
        out["failures"] = self.failures
        out["retries"] = self.retries
        out["inflight_rows"] = self.gate.window.inflight_rows
        return out
