"""attach(): the notebook / CLI handle on a running capture (through its named ControllerActor).

from xtrader.control import attach
capture = attach()                      # joins the running Ray cluster
capture.streams()                       # {"binance": {"venue": ..., "symbols": [...], ...}}
capture.subscribe("binance", ["SOLUSDT"])
capture.stats()                         # every actor's stats
capture.stop()                          # the driver drains, flushes and prints its summary
"""

from __future__ import annotations

from typing import Any

#: must match actors.controller.CONTROLLER_NAME (kept here so the library does not import actors/)
CONTROLLER_NAME = "xtrader-controller"


class Control:
    """Blocking calls on a capture's ControllerActor."""

    def __init__(self, handle: Any, timeout_s: float = 30.0) -> None:
        self.handle = handle
        self.timeout_s = timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.handle, method).remote(*args), timeout=self.timeout_s)

    def streams(self) -> dict[str, Any]:
        """Stream id -> venue, tables, symbols and connector ids."""
        return self._call("list_streams")  # type: ignore[no-any-return]

    def actors(self) -> list[str]:
        return self._call("list_actors")  # type: ignore[no-any-return]

    def subscribe(self, stream: str, symbols: list[str], tables: list[str] | None = None) -> list[str]:
        """Add symbols to a running stream; returns the connectors that subscribed."""
        return self._call("subscribe", stream, symbols, tables)  # type: ignore[no-any-return]

    def unsubscribe(self, stream: str, symbols: list[str], tables: list[str] | None = None) -> list[str]:
        return self._call("unsubscribe", stream, symbols, tables)  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self._call("stats")  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Ask the driver to stop: it drains every actor and flushes every sink."""
        self._call("stop")


def attach(address: str | None = "auto", namespace: str = "xtrader", timeout_s: float = 30.0) -> Control:
    """Find the running capture's controller (connecting to Ray first when this process is not).

    Raises:
        LookupError: no capture is running in `namespace`.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, namespace=namespace, log_to_driver=False)
    try:
        handle = ray.get_actor(CONTROLLER_NAME, namespace=namespace)
    except ValueError:
        raise LookupError(f"no running capture (no {CONTROLLER_NAME!r} actor in namespace {namespace!r})") from None
    return Control(handle, timeout_s)
