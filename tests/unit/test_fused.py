"""`actors.fused`: stages called in process as Ray calls them, and found by name from anywhere."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

from actors import actor_name, name_prefix
from actors.fused import HOST_ID, FusedPeer, LocalHandle, Recipes, _Threads, host_name


class Stage:
    """An async stage (as ConnectorActor, OrderBookActor): a coroutine method and a plain one."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def on_batch(self, n: int) -> int:
        await asyncio.sleep(0)
        self.seen.append(n)
        return n * 2

    def stats(self) -> dict[str, int]:
        return {"seen": len(self.seen)}

    def fail(self) -> None:
        raise RuntimeError("bad batch")


class SinkActor:
    """A threaded stage: `write` runs on its thread in call order, `stats` on the control thread."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()

    def write(self, n: int) -> bool:
        self.threads.add(threading.current_thread().name)
        if n == 0:
            self.gate.wait(5)  # the first write is slow: the later ones wait behind it, in order
        self.written.append(n)
        return True

    def stats(self) -> dict[str, object]:
        return {"written": list(self.written), "thread": threading.current_thread().name}


def test_an_async_stage_runs_its_coroutines_as_tasks_and_its_plain_methods_at_once() -> None:
    async def main() -> None:
        stage = Stage()
        handle = LocalHandle(stage)
        refs = [handle.on_batch.remote(n) for n in range(5)]
        assert stage.seen == []  # started, as a Ray call, not run inside `.remote`
        assert await asyncio.gather(*refs) == [0, 2, 4, 6, 8]
        assert stage.seen == [0, 1, 2, 3, 4]  # in call order
        assert await handle.stats.remote() == {"seen": 5}
        with pytest.raises(RuntimeError, match="bad batch"):
            await handle.fail.remote()
        assert await handle.__ray_call__.remote(lambda obj, k: len(obj.seen) + k, 10) == 15
        await asyncio.sleep(0)  # the done callbacks
        assert not handle.tasks  # nothing kept once done

    asyncio.run(main())


def test_a_threaded_stage_writes_in_call_order_on_its_thread_and_answers_stats_beside_a_slow_write() -> None:
    async def main() -> None:
        sink = SinkActor()
        handle = LocalHandle(sink, _Threads("SinkActor"))
        writes = [handle.write.remote(n) for n in range(4)]  # the first blocks until the gate opens
        stats = await asyncio.wait_for(handle.stats.remote(), 5)  # not behind the slow write
        assert stats["written"] == [] and stats["thread"].startswith("SinkActor-control")
        sink.gate.set()
        assert await asyncio.gather(*writes) == [True] * 4
        assert sink.written == [0, 1, 2, 3]
        assert len(sink.threads) == 1 and next(iter(sink.threads)).startswith("SinkActor")
        handle.threads.shutdown()  # type: ignore[union-attr]

    asyncio.run(main())


def test_a_stage_name_leads_to_its_host_and_a_peer_travels_by_names_only() -> None:
    prefix = name_prefix("my:capture")
    stage = actor_name(prefix, "book/binance")
    assert host_name(stage) == actor_name(prefix, HOST_ID)
    assert host_name("some-other-actor") is None
    peer = FusedPeer(host_name(stage) or "", stage)
    peer._handle = object()  # a looked-up handle is not sent along
    again = pickle.loads(pickle.dumps(peer))
    assert (again.host, again.stage, again._handle) == (peer.host, stage, None)


def test_recipes_take_pipeline_stages_only_and_hand_out_peers() -> None:
    from actors.connector import ConnectorActor

    recipes = Recipes("xtrader:c:0123abcd:fused")
    peer = recipes.spawn(ConnectorActor, {"name": "xtrader:c:0123abcd:binance/c0/r0", "num_cpus": 1}, "spec", x=1)
    assert isinstance(peer, FusedPeer) and peer.stage == "xtrader:c:0123abcd:binance/c0/r0"
    assert recipes.recipes[0].cls == "ConnectorActor" and recipes.recipes[0].kwargs == {"x": 1}
    with pytest.raises(ValueError, match="cannot be fused"):
        recipes.spawn(Stage, {"name": "x"})
