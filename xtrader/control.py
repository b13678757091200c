"""attach(): the notebook / CLI handle on a running capture (through its named ControllerActor).

from xtrader.control import attach
capture = attach()                      # joins the running Ray cluster
capture.streams()                       # pyarrow Table: one row per (venue, table, symbol, connection)
capture.subscribe("binance", ["trades", "bbo"], ["SOLUSDT"])
capture.unsubscribe("binance", ["trades", "bbo"], ["SOLUSDT"])
capture.stats()                         # pyarrow Table: one row per actor (actor_stats(): the full dicts)
capture.events(since=time.time() - 60)  # pyarrow Table: the last minute's events rows
capture.stop()                          # the driver drains, flushes and prints its summary
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from xtrader.control_requests import RequestError

#: must match actors.controller.CONTROLLER_NAME (kept here so the library does not import actors/)
CONTROLLER_NAME = "xtrader-controller"


class Control:
    """Blocking calls on a capture's ControllerActor.

    Bad subscription requests raise `xtrader.control_requests.RequestError` (a ValueError) naming
    what is wrong; nothing is changed then.
    """

    def __init__(self, handle: Any, timeout_s: float = 30.0) -> None:
        self.handle = handle
        self.timeout_s = timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        import ray
        from ray.exceptions import RayTaskError

        try:
            return ray.get(getattr(self.handle, method).remote(*args), timeout=self.timeout_s)
        except RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, RequestError):
                raise RequestError(str(cause)) from None  # the message alone, not the actor's traceback
            raise

    def streams(self) -> pa.Table:
        """One row per (venue, table, symbol, connection): state, rows/s over the last 10 s, rows, last
        message age, gaps, resyncs, reconnects, latency p99, node (`xtrader.streams_table.STREAMS_SCHEMA`)."""
        return self._call("streams_table")

    def stream_config(self) -> dict[str, Any]:
        """Stream id -> venue, tables, symbols (now subscribed) and connector ids."""
        return self._call("list_streams")  # type: ignore[no-any-return]

    def actors(self) -> list[str]:
        return self._call("list_actors")  # type: ignore[no-any-return]

    def subscribe(self, venue: str, tables: list[str], symbols: list[str], redundancy: int | None = None) -> list[str]:
        """Add `symbols` (for `tables`) to the running connection of `venue` (a stream id works too) and its
        redundant copies; returns the connectors that subscribed.

        Raises:
            RequestError: unknown venue, a table it lacks, a malformed or unlisted symbol, or no
                running connection that can take them; nothing changed.
        """
        return self._call("subscribe", venue, list(tables), list(symbols), redundancy)  # type: ignore[no-any-return]

    def unsubscribe(self, venue: str, tables: list[str], symbols: list[str]) -> list[str]:
        """Remove `symbols` (for `tables`) from every connection of `venue` carrying them; a connector left
        with nothing is stopped and its placement group removed. Returns the connectors changed.

        Raises:
            RequestError: as `subscribe`, or something named is not subscribed; nothing changed.
        """
        return self._call("unsubscribe", venue, list(tables), list(symbols))  # type: ignore[no-any-return]

    def stats(self) -> pa.Table:
        """One row per actor: kind, venue, ok / error, messages, rows, reconnects, last message age, node."""
        return self._call("stats_table")

    def actor_stats(self) -> dict[str, Any]:
        """Every actor's full stats dict (what `stats()` summarises)."""
        return self._call("stats")  # type: ignore[no-any-return]

    def events(self, since: float | None = None) -> pa.Table:
        """The newest `events` rows (connects, disconnects, gaps, resyncs, rejects...), at or after `since`
        (epoch seconds; None: all kept, about the last 10 000)."""
        return self._call("events", since)

    def stop(self) -> None:
        """Ask the driver to stop: it drains every actor and flushes every sink."""
        self._call("stop")


def attach(address: str | None = "auto", namespace: str = "xtrader", timeout_s: float = 30.0) -> Control:
    """Find the running capture's controller (connecting to Ray first when this process is not).

    Raises:
        LookupError: no capture is running in `namespace`.
        ConnectionError: no Ray answers at `address` (a HOST:PORT is tried first, so this takes seconds,
            not Ray's minutes of retries), or, for "auto", no Ray runs on this machine.
    """
    import ray

    if not ray.is_initialized():
        _check_reachable(address)
        ray.init(address=address, namespace=namespace, log_to_driver=False)
    try:
        handle = ray.get_actor(CONTROLLER_NAME, namespace=namespace)
    except ValueError:
        raise LookupError(f"no running capture (no {CONTROLLER_NAME!r} actor in namespace {namespace!r})") from None
    return Control(handle, timeout_s)


def _check_reachable(address: str | None, timeout_s: float = 3.0) -> None:
    """Raise ConnectionError when `address` is HOST:PORT and nothing listens there."""
    import socket

    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConnectionError(f"no Ray at {address}: {exc.strerror or exc}") from None
