"""Venue name -> the class that simulates it. Adding a venue is one line here."""

from __future__ import annotations

import importlib

from .venue import Venue

VENUES: dict[str, str] = {
    "binance": "xtrader.simulator.binance:BinanceSpot",
    "binance_futures": "xtrader.simulator.binance:BinanceFutures",
    "deribit": "xtrader.simulator.deribit:Deribit",
    "okx": "xtrader.simulator.okx:Okx",
}
PLANNED: tuple[str, ...] = ()  # named by the CLI, not simulated yet (none left)


def venue_class(name: str) -> type[Venue]:
    """The Venue subclass registered as `name`.

    Raises:
        ValueError: the venue is unknown or not simulated yet.
    """
    target = VENUES.get(name)
    if target is None:
        if name in PLANNED:
            raise ValueError(f"venue {name!r} is not implemented in the simulator yet (available: {', '.join(VENUES)})")
        raise ValueError(f"unknown venue {name!r} (available: {', '.join(VENUES)})")
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert isinstance(cls, type) and issubclass(cls, Venue)
    return cls
