"""Named fault switches: parse a SPEC string and decide, per connection, what goes wrong.

SPEC syntax: ``name=value,name=value`` (e.g. ``drop_rate=0.1,disconnect_after_msgs=50``).
A SPEC can apply to the whole simulator (``Simulator(faults=...)``, ``--faults``) or to one
connection or REST request, through either

- a query parameter: ``/stream?streams=btcusdt@trade/btcusdt@depth&faults=drop_rate=0.1,no_pong=1``
  (``&`` separates it from the venue's own query; ``,`` and ``=`` are legal inside a query
  value, percent-encoded forms are decoded), or
- a path prefix, so a client can be handed a base URL with faults baked in:
  ``ws://127.0.0.1:PORT/_faults/drop_rate=0.1,no_pong=1`` + ``/ws/btcusdt@trade``.

Per-connection names override the simulator-wide ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields, replace
from urllib.parse import unquote

FAULTS_PREFIX = "/_faults/"
FAULTS_QUERY_KEY = "faults"


@dataclass(frozen=True)
class Faults:
    """Fault switches; the defaults mean "behave like the real venue"."""

    disconnect_after_msgs: int = 0  # close after this many data frames (0: never)
    disconnect_after_s: float = 0.0  # close every connection this long after it opened
    close_without_frame: int = 0  # disconnects drop TCP with no close frame
    drop_rate: float = 0.0  # probability a data frame is not sent
    duplicate_rate: float = 0.0  # probability a data frame is sent twice
    reorder_rate: float = 0.0  # probability a data frame is swapped with the next one
    bad_checksum_rate: float = 0.0  # probability a checksum is corrupted (venues with one)
    malformed_rate: float = 0.0  # probability a frame is replaced by truncated JSON
    unknown_rate: float = 0.0  # probability a well-formed but unknown message is inserted
    stall_after_s: float = 0.0  # stop sending data (socket stays open) after this long
    no_pong: int = 0  # do not answer the client's pings
    no_close_reply: int = 0  # never answer the client's close frame (a hung server: the client drops TCP)
    rest_delay_s: float = 0.0  # delay every REST response
    rest_429: int = 0  # the first N snapshot requests get HTTP 429 + Retry-After
    stale_snapshot: int = 0  # the first N snapshot requests per symbol return an old book
    shutdown_after_s: float = 0.0  # extra: venue shutdown notice, then close, this long after open
    handshake_delay_s: float = 0.0  # delay every websocket handshake (a link that is still connecting)
    faults_for_s: float = 0.0  # simulator-wide: every fault ends this long after the simulator started (0: never)

    @property
    def active(self) -> bool:
        """True when any switch differs from the default."""
        return self != NO_FAULTS

    def as_spec(self) -> str:
        """The SPEC string of the non-default switches (round-trips through parse_faults)."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                parts.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
        return ",".join(parts)


NO_FAULTS = Faults()
_RATES = {f.name for f in fields(Faults) if f.name.endswith("_rate")}
_FLAGS = {"close_without_frame", "no_pong", "no_close_reply"}


def parse_faults(spec: str | None, base: Faults = NO_FAULTS) -> Faults:
    """Parse ``name=value,...`` on top of `base`.

    Raises:
        ValueError: naming the unknown switch or the bad value.
    """
    if spec is None or not spec.strip():
        return base
    types = {f.name: f.type for f in fields(Faults)}
    changes: dict[str, float | int] = {}
    for raw_item in unquote(spec).split(","):
        item = raw_item.strip()
        if not item:
            continue
        name, sep, raw = item.partition("=")
        name = name.strip()
        if name not in types:
            raise ValueError(f"unknown fault {name!r} in {spec!r}; known: {', '.join(sorted(types))}")
        if not sep:
            raise ValueError(f"fault {name!r} needs a value ({name}=...)")
        try:
            value: float | int = int(raw) if types[name] == "int" else float(raw)
        except ValueError:
            kind = "an integer" if types[name] == "int" else "a number"
            raise ValueError(f"fault {name}={raw!r}: value must be {kind}") from None
        if value < 0 or math.isnan(value):
            raise ValueError(f"fault {name}={raw!r}: value must be >= 0")
        if name in _RATES and value > 1:
            raise ValueError(f"fault {name}={raw!r}: a rate is a probability in [0, 1]")
        if name in _FLAGS and value not in (0, 1):
            raise ValueError(f"fault {name}={raw!r}: a flag is 0 or 1")
        changes[name] = value
    return replace(base, **changes)  # type: ignore[arg-type]


def split_faults(path: str, query: str) -> tuple[str, str, str | None]:
    """Strip the fault selectors off a request target.

    Returns:
        (venue path, venue query without ``faults=``, SPEC or None). When both a path
        prefix and a query parameter are present, the query's switches win.
    """
    spec_parts: list[str] = []
    if path.startswith(FAULTS_PREFIX):
        rest = path[len(FAULTS_PREFIX) :]
        spec, _, tail = rest.partition("/")
        spec_parts.append(unquote(spec))
        path = "/" + tail
    kept = []
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        if key == FAULTS_QUERY_KEY:
            spec_parts.append(unquote(value))
        else:
            kept.append(item)
    return path, "&".join(kept), ",".join(p for p in spec_parts if p) or None


class FaultDice:
    """Seeded per-connection random decisions, so a fault run is reproducible."""

    __slots__ = ("_random", "faults")

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._random = random.Random(seed).random

    def hit(self, rate: float) -> bool:
        """True with probability `rate` (never draws when the rate is 0)."""
        return rate > 0.0 and self._random() < rate
