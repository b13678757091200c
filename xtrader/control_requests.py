"""Pure: check a run-time subscribe / unsubscribe request before anything changes.

Every problem of a request is collected into one `RequestError` (a ValueError) naming each:
an unknown venue, a table the venue lacks, a malformed symbol, a symbol the venue does not list
(when its instrument list is known), or, for unsubscribe, something not subscribed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

#: the tables a stream can capture (`xtrader.venues.base.Table`)
TABLES = ("trades", "l2", "bbo")
#: a venue-native instrument id, as `xtrader.config.Symbol` accepts it
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,63}$")


class RequestError(ValueError):
    """A run-time subscription request that cannot be carried out; nothing was changed."""


@dataclass(frozen=True)
class Request:
    """A checked request: the venue, its tables and symbols (order kept, repeats removed)."""

    op: str
    venue: str
    tables: tuple[str, ...]
    symbols: tuple[str, ...]


def venue_tables(venue: str) -> tuple[str, ...]:
    """The tables `venue` can feed.

    Raises:
        KeyError: unknown venue (the message lists the known ones).
    """
    from xtrader.venues import VENUES
    from xtrader.venues import venue as make_venue

    make_venue(venue)
    declared = VENUES[venue].field_sources
    return tuple(t for t in TABLES if t in declared) if declared else TABLES


def _names(value: object, what: str, problems: list[str]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        problems.append(f"{what} must be a list of strings, not {type(value).__name__}")
        return []
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            problems.append(f"{what}: {item!r} is not a string")
        elif item not in out:
            out.append(item)
    if not out and not problems:
        problems.append(f"no {what} given")
    return out


def check(
    op: str,
    venue: object,
    tables: object,
    symbols: object,
    *,
    instruments: Collection[str] | None = None,
    subscribed: Collection[tuple[str, str]] | None = None,
) -> Request:
    """Check one request.

    Args:
        op: "subscribe" or "unsubscribe".
        instruments: the venue's instrument ids (None: not known, not checked).
        subscribed: the (table, symbol) pairs the venue's streams carry now (subscribe: none of the
            request's may be among them; unsubscribe: all must be). None: not checked.

    Raises:
        RequestError: what is wrong, every problem named in one message.
    """
    problems: list[str] = []
    available: tuple[str, ...] = ()
    if not isinstance(venue, str):
        problems.append(f"venue must be a string, not {type(venue).__name__}")
    else:
        try:
            available = venue_tables(venue)
        except KeyError as exc:
            problems.append(str(exc.args[0]))
    table_names = _names(tables, "tables", problems)
    symbol_names = [s.strip() for s in _names(symbols, "symbols", problems)]
    if available:
        lacking = [t for t in table_names if t not in available]
        if lacking:
            problems.append(f"{venue} has no table {', '.join(map(repr, lacking))} (it has: {', '.join(available)})")
    malformed = [s for s in symbol_names if not SYMBOL.match(s)]
    if malformed:
        problems.append(
            f"malformed symbol {', '.join(map(repr, malformed))} (a venue-native id such as BTCUSDT, "
            "BTC-USDT-SWAP or BTC-PERPETUAL: letters, digits and _ . / : -)"
        )
    well_formed = [s for s in symbol_names if s not in malformed]
    if available and instruments is not None and op == "subscribe":
        unlisted = [s for s in well_formed if s not in instruments]
        if unlisted:
            problems.append(f"{venue} does not list {', '.join(map(repr, unlisted))}")
    if available and subscribed is not None and op == "subscribe":
        present = [f"{t} {s}" for t in table_names if t in available for s in well_formed if (t, s) in subscribed]
        if present:
            problems.append(f"already subscribed on {venue}: {', '.join(present)}")
    if available and subscribed is not None and op == "unsubscribe":
        absent = [f"{t} {s}" for t in table_names if t in available for s in well_formed if (t, s) not in subscribed]
        if absent:
            problems.append(f"not subscribed on {venue}: {', '.join(absent)}")
    if problems:
        raise RequestError(f"{op} rejected, nothing changed: " + "; ".join(problems))
    assert isinstance(venue, str)
    return Request(op, venue, tuple(table_names), tuple(symbol_names))
