"""FusedActor: a whole capture's connectors, arbiters, order books and sinks in one actor process.

`pipeline.fused` (docs/guide.md, "One process: pipeline.fused"). Each stage is the very class it is in an actor of
its own (`ConnectorActor`, `ArbiterActor`, `OrderBookActor`, `SinkActor`), built with the same arguments; only the
calls between stages change. A call to a stage in this process goes through a `LocalHandle`: it runs on this
process's event loop, without Ray's serialization, object store or scheduling (py-spy put those at a quarter of a
connector's and of an order book's CPU). A sink keeps the threads it has as an actor of its own: its writes run on
one thread, in call order, and its control calls (`actors.METHOD_GROUPS`) on another, so a slow store holds back
neither the event loop nor the driver's stats.

From outside (the driver, the controller, a connector added at run time), a stage is a `FusedPeer`: its
`.method.remote(...)` is the host's `call(stage, method, ...)`, and `actors.peer` resolves a stage's name to one.

What the fusion costs: one CPU (the host's) for the whole capture, and one failure domain: a crash restarts every
stage together (Ray restarts the host with the same recipes; the connectors reconnect and capture again, the Parquet
sink recovers its write-ahead log).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any, NamedTuple

#: the host's id (its Ray name is `actor_name(prefix, HOST_ID)`)
HOST_ID = "fused"
#: the stage classes a host builds, by name (what a Recipe names)
STAGES = ("SinkActor", "OrderBookActor", "ArbiterActor", "ConnectorActor")
#: stage classes that are threaded actors of their own (no event loop): their methods run on threads here too
THREADED = frozenset({"SinkActor"})

_PREFIX = re.compile(r"^(xtrader:.*:[0-9a-f]{8}:)")


class Recipe(NamedTuple):
    """One stage: its class name, its name (`actors.actor_name`), and the arguments its own actor would get."""

    cls: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def host_name(name: str) -> str | None:
    """The name of the fused host that would hold the stage named `name` (`actors.actor_name`); None if `name`
    is not a capture actor's name."""
    match = _PREFIX.match(name)
    return f"{match.group(1)}{HOST_ID}" if match else None


#: this process's stages, by Ray name (filled by a FusedActor; empty in any other process)
LOCAL: dict[str, LocalHandle] = {}


#: the module of each stage class
_MODULES = {
    "SinkActor": "actors.sink",
    "OrderBookActor": "actors.book",
    "ArbiterActor": "actors.arbiter",
    "ConnectorActor": "actors.connector",
}


def _stage_class(name: str) -> type:
    if name not in _MODULES:
        raise ValueError(f"not a pipeline stage: {name!r} (one of {', '.join(STAGES)})")
    cls: type = getattr(importlib.import_module(_MODULES[name]), name)
    return cls


class _Threads:
    """A threaded stage's threads: one per concurrency group (`actors.METHOD_GROUPS`), plus the default one."""

    def __init__(self, cls: str) -> None:
        from actors import METHOD_GROUPS

        group, methods = METHOD_GROUPS.get(cls, ("", ()))
        self.default = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{cls}")
        grouped = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{cls}-{group}") if methods else None
        self.groups = {method: grouped for method in methods}

    def of(self, method: str) -> concurrent.futures.ThreadPoolExecutor:
        return self.groups.get(method) or self.default

    def shutdown(self) -> None:
        for pool in {self.default, *self.groups.values()}:
            if pool is not None:
                pool.shutdown(wait=False)


class LocalHandle:
    """A stage in this process, called as an actor handle is: `handle.method.remote(*args)` returns an awaitable.

    An async method runs as a task on the running loop; a plain method of an async stage runs at once, on the
    loop (as Ray runs it in an async actor); a threaded stage's methods run on its threads (`_Threads`).
    """

    def __init__(self, obj: Any, threads: _Threads | None = None) -> None:
        self.obj = obj
        self.threads = threads
        self.tasks: set[asyncio.Future[Any]] = set()  # fire-and-forget calls (a resync request) are kept alive

    def __getattr__(self, method: str) -> _Method:
        return _method(self, method)

    def submit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if method == "__ray_call__":  # fn(stage, *args), as Ray's own
            fn, *rest = args
            call: Callable[[], Any] = functools.partial(fn, self.obj, *rest, **kwargs)
        else:
            call = functools.partial(getattr(self.obj, method), *args, **kwargs)
        if self.threads is not None:
            future: asyncio.Future[Any] = loop.run_in_executor(self.threads.of(method), call)
        else:
            future = loop.create_future()
            try:
                result = call()
            except Exception as exc:
                future.set_exception(exc)
            else:
                if inspect.iscoroutine(result):
                    future = loop.create_task(result)
                else:
                    future.set_result(result)
        self.tasks.add(future)
        future.add_done_callback(self.tasks.discard)
        return future


class _Method:
    """`handle.method`, whose `.remote(*args, **kwargs)` is `handle.submit(method, args, kwargs)`."""

    __slots__ = ("handle", "method")

    def __init__(self, handle: LocalHandle | FusedPeer, method: str) -> None:
        self.handle = handle
        self.method = method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self.handle.submit(self.method, args, kwargs)


def _method(handle: LocalHandle | FusedPeer, method: str) -> _Method:
    """An actor-handle-like method (dunders other than Ray's `__ray_call__` are not methods: pickling, copying
    and the like must not find them)."""
    if method.startswith("__") and method != "__ray_call__":
        raise AttributeError(method)
    return _Method(handle, method)


class FusedPeer:
    """A stage of a fused host, seen from another process: `peer.method.remote(...)` is the host's
    `call(stage, method, ...)`. Holds names only (picklable, restart-safe); the host is looked up when first
    called."""

    def __init__(self, host: str, stage: str) -> None:
        """host: the FusedActor's name; stage: the stage's name (`actors.actor_name`)."""
        self.host = host
        self.stage = stage
        self._handle: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"host": self.host, "stage": self.stage}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["host"], state["stage"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"FusedPeer({self.stage!r} in {self.host!r})"

    def __getattr__(self, method: str) -> _Method:
        return _method(self, method)

    def submit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The host's `call(stage, method, ...)`: its ObjectRef."""
        if self._handle is None:
            import ray

            self._handle = ray.get_actor(self.host)
        return self._handle.call.remote(self.stage, method, *args, **kwargs)


class FusedActor:
    """Builds every stage of its recipes in this process, in data-flow order from the sinks up (a stage looks
    its downstream peers up by name when it is built), and answers calls to them (`call`).

    Args:
        recipes: the stages (`Recipe`), sinks first; only plain values, so Ray restarts the host with them.
    """

    def __init__(self, recipes: list[Recipe]) -> None:
        self.stages: dict[str, LocalHandle] = {}  # by name
        order = {cls: i for i, cls in enumerate(STAGES)}
        for recipe in sorted(recipes, key=lambda r: order[r.cls]):
            obj = _stage_class(recipe.cls)(*recipe.args, **recipe.kwargs)
            handle = LocalHandle(obj, _Threads(recipe.cls) if recipe.cls in THREADED else None)
            LOCAL[recipe.name] = self.stages[recipe.name] = handle

    async def call(self, stage: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """`stage.method(*args, **kwargs)` (stage: its name), as the stage's own actor would run it."""
        handle = self.stages.get(stage)
        if handle is None:
            raise KeyError(f"no stage {stage!r} in this fused host (it has {', '.join(sorted(self.stages))})")
        return await handle.submit(method, args, kwargs)


class Recipes:
    """Collects the stages of a fused capture as `create_stream_actors` would create actors (`spawn`), and hands
    out a `FusedPeer` for each."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.recipes: list[Recipe] = []

    def spawn(self, cls: type, options: dict[str, Any], *args: Any, **kwargs: Any) -> FusedPeer:
        if cls.__name__ not in STAGES:
            raise ValueError(f"{cls.__name__} cannot be fused (only {', '.join(STAGES)})")
        self.recipes.append(Recipe(cls.__name__, options["name"], args, kwargs))
        return FusedPeer(self.host, options["name"])
