"""Venue registry: name -> Venue class."""

from __future__ import annotations

from xtrader.venues.base import Connection, Control, Keepalive, SnapshotRequest, Subscription, Venue

VENUES: dict[str, type[Venue]] = {}


def register(cls: type[Venue]) -> type[Venue]:
    """Class decorator adding a venue to VENUES under its `name`."""
    VENUES[cls.name] = cls
    return cls


def venue(name: str, ws_base: str | None = None, rest_base: str | None = None) -> Venue:
    """Instantiate the venue `name`.

    Raises:
        KeyError: no such venue (the message lists the known ones).
    """
    _load()
    try:
        cls = VENUES[name]
    except KeyError:
        raise KeyError(f"unknown venue {name!r}; known: {', '.join(sorted(VENUES))}") from None
    return cls(ws_base=ws_base, rest_base=rest_base)


def _load() -> None:
    """Import the venue modules (they register themselves)."""
    import importlib

    for module in ("binance", "okx", "deribit"):
        try:
            importlib.import_module(f"xtrader.venues.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"xtrader.venues.{module}":
                raise


__all__ = [
    "VENUES",
    "Connection",
    "Control",
    "Keepalive",
    "SnapshotRequest",
    "Subscription",
    "Venue",
    "register",
    "venue",
]
