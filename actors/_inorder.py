"""A consumer actor's entry point: each producer's calls processed in the order the producer numbered them.

Ray runs an async actor's calls as they become ready, not in the order they were made (Ray's own
documentation says so), so the order-book and arbiter actors put every numbered call through
`xtrader.reorder.Reorder` and process what it releases. `process` gets the due items as a list and must
do its order-sensitive part for all of them before its first `await`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from xtrader.reorder import TIMEOUT_S, Reorder

T = TypeVar("T")


class InOrder(Generic[T]):
    """Feeds `process` each producer's items in sequence; an item missing its predecessors past the
    timeout is released anyway (by a timer, so nothing waits for the next call)."""

    def __init__(self, process: Callable[[list[T]], Awaitable[None]], timeout_s: float = TIMEOUT_S) -> None:
        self.order: Reorder[T] = Reorder(int(timeout_s * 1e9))
        self.process = process
        self.timer: asyncio.Task[None] | None = None

    async def push(
        self, source: str | None, seq: int | None, item: T, dropped: Sequence[int] = (), floor: int = 0
    ) -> None:
        """One call's item; unnumbered items (no `source`) are processed at once. `floor`: see `Reorder.push`."""
        if source is None or seq is None:
            await self.process([item])
            return
        ready = self.order.push(source, seq, item, time.monotonic_ns(), tuple(dropped), floor)
        if self.order.stats.waiting and self.timer is None:
            self.timer = asyncio.get_running_loop().create_task(self._expire())
        if ready:
            await self.process(ready)

    async def _expire(self) -> None:
        try:
            while (oldest := self.order.oldest_ns()) is not None:
                await asyncio.sleep(max(0.0, (oldest + self.order.timeout_ns - time.monotonic_ns()) / 1e9))
                ready = self.order.expired(time.monotonic_ns())
                if ready:
                    await self.process(ready)
        finally:
            self.timer = None

    async def flush(self) -> None:
        """Process everything still held (at drain: no predecessor is coming any more)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        ready = self.order.flush()
        if ready:
            await self.process(ready)

    def stats(self) -> dict[str, Any]:
        return self.order.stats.as_dict()


class Settled:
    """Answers each numbered call only once its item's output is acknowledged downstream.

    `expect(token)` before the item is pushed gives the future its call awaits (a repeated call, Ray's
    retry, shares the first one's); `when(token, acks)` once its output was sent: the future is set when
    every acknowledgement is in. An ack is a task whose result is True/False, or a list of such tasks
    (`Outputs.write_soon`). An ack that failed was accounted for by its sender (an `events` row).
    """

    def __init__(self) -> None:
        self.waiting: dict[Hashable, asyncio.Future[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def expect(self, token: Hashable) -> asyncio.Future[None]:
        future = self.waiting.get(token)
        if future is None:
            future = self.waiting[token] = asyncio.get_running_loop().create_future()
        return future

    def when(self, token: Hashable, acks: Sequence[Awaitable[Any]]) -> None:
        if token not in self.waiting:
            return
        if not acks:
            self._done(token)
            return
        task = asyncio.get_running_loop().create_task(self._wait(token, acks))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _wait(self, token: Hashable, acks: Sequence[Awaitable[Any]]) -> None:
        try:
            for ack in acks:
                result = await ack
                if isinstance(result, list):
                    await asyncio.gather(*result, return_exceptions=True)
        finally:
            self._done(token)

    def _done(self, token: Hashable) -> None:
        future = self.waiting.pop(token, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def answer(self, token: Hashable, push: Awaitable[Any]) -> None:
        """A numbered call: expect `token`, run `push` (handing its item on), then wait until the item's output
        is settled; an error handing it on fails the call (Ray retries it)."""
        done = self.expect(token)
        try:
            await push
        except Exception as exc:
            self.fail(token, exc)
        await done

    async def run(self, tokens: Sequence[Hashable], work: Awaitable[Any]) -> None:
        """Process a batch of ready items: if `work` raises, every call waiting for one of them gets the
        error (none waits forever), and it is raised again."""
        try:
            await work
        except Exception as exc:
            for token in tokens:
                self.fail(token, exc)
            raise

    def fail(self, token: Hashable, exc: BaseException) -> None:
        """The call's processing raised: its caller gets the error (Ray retries it)."""
        future = self.waiting.pop(token, None)
        if future is not None and not future.done():
            future.set_exception(exc)
