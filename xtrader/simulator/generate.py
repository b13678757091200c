"""Deterministic market generator: a random-walk mid, a deep book, trades that cross the spread.

Venue-neutral: prices are integer ticks, sizes integer lots, book changes carry abstract update
ids. Venue modules encode a `Step` into their wire format once, and the server fans the same
bytes out to every subscriber, so generation is never per connection.

A step is generated one visit *ahead* of its publication (`Market.pending`). That lets a REST
snapshot reflect a state in the middle of the next event, as a real venue's does: its
``lastUpdateId`` then lies inside that event's ``[U, u]``, which both the spot rule
(``U <= lastUpdateId + 1``) and the futures rule (``U <= lastUpdateId <= u``) need.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

BID, ASK = 0, 1
MEMO_SIZE = 1024  # values per memoised price formatter (`memo`)


@dataclass(frozen=True)
class Instrument:
    """One tradable symbol: price = ticks * 10**-tick_scale, size = lots * 10**-lot_scale."""

    base: str
    quote: str
    mid: float
    tick_scale: int
    lot_scale: int
    typical_size: float  # in base units: sets the lognormal level and trade sizes

    @property
    def symbol(self) -> str:
        return self.base + self.quote


_CATALOGUE = (
    Instrument("BTC", "USDT", 65000.0, 2, 5, 0.5),
    Instrument("ETH", "USDT", 3200.0, 2, 4, 5.0),
    Instrument("SOL", "USDT", 150.0, 2, 3, 50.0),
    Instrument("BNB", "USDT", 580.0, 2, 3, 10.0),
    Instrument("XRP", "USDT", 0.52, 4, 1, 5000.0),
    Instrument("ADA", "USDT", 0.45, 4, 1, 5000.0),
    Instrument("DOGE", "USDT", 0.12, 5, 0, 20000.0),
    Instrument("LTC", "USDT", 80.0, 2, 3, 20.0),
    Instrument("LINK", "USDT", 15.0, 3, 2, 200.0),
    Instrument("DOT", "USDT", 7.0, 3, 2, 300.0),
)


def instruments(count: int) -> list[Instrument]:
    """The first `count` instruments; synthetic ``SIM<n>USDT`` ones past the catalogue."""
    out = list(_CATALOGUE[:count])
    for i in range(len(out), count):
        out.append(Instrument(f"SIM{i}", "USDT", 10.0 + i, 3, 2, 100.0))
    return out


def fixed(units: int, scale: int, decimals: int) -> str:
    """``units * 10**-scale`` as a decimal string with exactly `decimals` decimals (exact)."""
    if scale == 0:
        text = str(units)
        return text + "." + "0" * decimals if decimals else text
    digits = str(units).rjust(scale + 1, "0")
    frac = digits[-scale:] + "0" * (decimals - scale)
    return digits[:-scale] + "." + frac


def memo(text: Callable[[int], str]) -> Callable[[int], str]:
    """`text` memoised for the `MEMO_SIZE` values used last (for prices: books revisit the same ones).

    Bounded on purpose: over a long run the mid wanders to ever new prices, and a memo that kept
    every value would grow for as long as clients are served. Sizes hardly repeat: do not memoise them.
    """
    return functools.lru_cache(maxsize=MEMO_SIZE)(text)


@dataclass(slots=True)
class Op:
    """One book change: the absolute new size of a level, and the update ids it used."""

    side: int
    tick: int
    lots: int  # 0 deletes the level
    prev_lots: int  # to undo, for mid-event snapshots
    first_id: int
    last_id: int


@dataclass(slots=True)
class Fill:
    """One trade: the taker hit the level at `tick`."""

    trade_id: int
    tick: int
    lots: int
    buyer_is_maker: bool


@dataclass(slots=True)
class FillGroup:
    """Fills of one taker order at one price (Binance's aggTrade)."""

    agg_id: int
    first_trade_id: int
    last_trade_id: int
    tick: int
    lots: int
    buyer_is_maker: bool


@dataclass(slots=True)
class Step:
    """One market event on one symbol, in update-id order."""

    prev_id: int  # the last update id before this step
    ops: list[Op] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    groups: list[FillGroup] = field(default_factory=list)
    bids: dict[int, int] = field(default_factory=dict)  # final size per changed level
    asks: dict[int, int] = field(default_factory=dict)
    bbo_changed: bool = False
    bbo: tuple[int, int, int, int] = (0, 0, 0, 0)  # bid tick, bid lots, ask tick, ask lots

    @property
    def first_id(self) -> int:
        return self.ops[0].first_id

    @property
    def last_id(self) -> int:
        return self.ops[-1].last_id

    def levels(self) -> tuple[dict[int, int], dict[int, int]]:
        """Final size per changed level (bids, asks), in first-change order."""
        return self.bids, self.asks


@dataclass(frozen=True)
class Snapshot:
    """A book state: levels best first, and the update id it is consistent with."""

    last_id: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class Market:
    """One symbol's book and trade tape, driven by a seeded RNG.

    Args:
        instrument: what is traded.
        seed: anything hashable into `random.Random`; same seed, same market.
        first_id: the update id of the initial book.
        id_gap: update ids between consecutive ops: 1 gives spot's contiguous ids, larger
            values the jumps of USD-M futures.
        depth: levels per side the book hovers around.
    """

    def __init__(self, instrument: Instrument, seed: str, first_id: int, id_gap: int = 1, depth: int = 200) -> None:
        self.instrument = instrument
        self.rng = random.Random(seed)
        self.id_gap = id_gap
        self.depth = depth
        self.last_id = first_id  # including the pending step
        self.published_id = first_id
        self.next_trade_id = 1 + self.rng.randrange(10**6, 10**7)
        self.next_agg_id = 1 + self.rng.randrange(10**5, 10**6)
        self.trend = 0.0
        self.pending: Step | None = None
        # The published book, kept apart only while pre-generated steps run ahead of it
        # (`Venue.pregenerate`); None: `sides` minus the pending step is the published book.
        self.published: tuple[dict[int, int], dict[int, int]] | None = None
        mid = round(instrument.mid * 10**instrument.tick_scale)
        self._size_mu = math.log(instrument.typical_size * 10**instrument.lot_scale)
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for k in range(depth):
            if k == 0 or self.rng.random() > 0.1:
                self.sides[BID][mid - 1 - k] = self._size()
                self.sides[ASK][mid + k] = self._size()
        self.best = [mid - 1, mid]
        self.initial = self.snapshot(limit=5000)

    # -- reading ---------------------------------------------------------------

    def snapshot(self, limit: int, inside_pending: int | None = None) -> Snapshot:
        """The published book (top `limit` per side).

        Args:
            inside_pending: if given and a step is pending, the state just before op
                number `inside_pending` of it completes; ``last_id`` is then that op's
                first id, inside the pending event's id range.
        """
        step = self.pending
        last_id = self.published_id
        if self.published is not None:
            bids, asks = dict(self.published[BID]), dict(self.published[ASK])
            if step is not None and inside_pending is not None:
                cut = min(inside_pending, len(step.ops) - 1)
                for op in step.ops[:cut]:
                    book = bids if op.side == BID else asks
                    if op.lots:
                        book[op.tick] = op.lots
                    else:
                        book.pop(op.tick, None)
                last_id = step.ops[cut].first_id
            return Snapshot(last_id, sorted(bids.items(), reverse=True)[:limit], sorted(asks.items())[:limit])
        bids, asks = dict(self.sides[BID]), dict(self.sides[ASK])
        if step is not None:
            cut = 0 if inside_pending is None else min(inside_pending, len(step.ops) - 1)
            for op in reversed(step.ops[cut:]):
                book = bids if op.side == BID else asks
                if op.prev_lots:
                    book[op.tick] = op.prev_lots
                else:
                    book.pop(op.tick, None)
            if inside_pending is not None:
                last_id = step.ops[cut].first_id
        top_bids = sorted(bids.items(), reverse=True)[:limit]
        top_asks = sorted(asks.items())[:limit]
        return Snapshot(last_id, top_bids, top_asks)

    # -- stepping --------------------------------------------------------------

    def publish(self) -> Step | None:
        """Hand over the pending step (its frames go on the wire now)."""
        step, self.pending = self.pending, None
        if step is not None:
            self.published_id = step.last_id
            if self.published is not None:
                for op in step.ops:
                    book = self.published[op.side]
                    if op.lots:
                        book[op.tick] = op.lots
                    else:
                        book.pop(op.tick, None)
        return step

    def generate(self) -> Step:
        """Make the next step and keep it pending; mutates the book."""
        step = Step(prev_id=self.last_id)
        before = self._bbo()
        r = self.rng.random
        self.trend = max(-0.3, min(0.3, self.trend + (r() - 0.5) * 0.05))
        if r() < 0.3:
            self._trade(step)
        for _ in range(1 + int(r() * 3)):
            self._maker(step)
        after = self._bbo()
        step.bbo_changed = after != before
        step.bbo = after
        self.pending = step
        return step

    def _size(self) -> int:
        return 1 + int(math.exp(self.rng.gauss(self._size_mu, 1.0)))

    def _bbo(self) -> tuple[int, int, int, int]:
        b, a = self.best
        return (b, self.sides[BID][b], a, self.sides[ASK][a])

    def _set(self, step: Step, side: int, tick: int, lots: int) -> None:
        book = self.sides[side]
        prev = book.get(tick, 0)
        # Each op spans two ids or more, so a snapshot can claim an id inside the event.
        first = self.last_id + (1 if self.id_gap == 1 else self.rng.randint(1, self.id_gap))
        last = first + 1 + (self.rng.random() < 0.3)
        self.last_id = last
        step.ops.append(Op(side, tick, lots, prev, first, last))
        (step.bids if side == BID else step.asks)[tick] = lots
        if lots:
            book[tick] = lots
            if (side == BID and tick > self.best[BID]) or (side == ASK and tick < self.best[ASK]):
                self.best[side] = tick
        else:
            del book[tick]
            if tick == self.best[side]:
                self.best[side] = max(book) if side == BID else min(book)

    def _trade(self, step: Step) -> None:
        taker_buys = self.rng.random() < 0.5 + self.trend
        side = ASK if taker_buys else BID
        book = self.sides[side]
        want = self._size()
        for _ in range(3):
            if want <= 0 or len(book) <= 5:
                break
            tick = self.best[side]
            take = min(want, book[tick])
            want -= take
            pieces = [take] if take < 3 or self.rng.random() < 0.6 else [take // 2, take - take // 2]
            first_trade = self.next_trade_id
            for lots in pieces:
                step.fills.append(Fill(self.next_trade_id, tick, lots, not taker_buys))
                self.next_trade_id += 1
            step.groups.append(
                FillGroup(self.next_agg_id, first_trade, self.next_trade_id - 1, tick, take, not taker_buys)
            )
            self.next_agg_id += 1
            self._set(step, side, tick, book[tick] - take)

    def _maker(self, step: Step) -> None:
        r = self.rng.random
        side = BID if r() < 0.5 else ASK
        book = self.sides[side]
        sign = -1 if side == BID else 1
        spread = self.best[ASK] - self.best[BID]
        if spread > 1 and r() < 0.6:
            # Makers step inside a wide spread: this is what lets the mid walk.
            inside = 1 + int(r() * min(spread - 1, 3))
            tick = self.best[BID] + inside if side == BID else self.best[ASK] - inside
            self._set(step, side, tick, self._size())
        elif len(book) > self.depth * 1.2:
            self._set(step, side, min(book) if side == BID else max(book), 0)
        elif len(book) < self.depth or r() < 0.4:
            distance = 1 + int(self.rng.expovariate(4.0 / self.depth))
            self._set(step, side, self.best[side] + sign * distance, self._size())
        else:
            tick = self.best[side] + sign * int(self.rng.expovariate(1 / 8.0))
            if tick in book and len(book) > 10:
                self._set(step, side, tick, 0 if r() < 0.6 else self._size())
            else:
                self._set(step, side, self.best[side], self._size())
