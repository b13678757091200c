"""A venue-agnostic L2 order book: absolute levels, top-N, best bid/offer, checksum input.

Prices key the book as float64 parsed from the venue's exact decimal text:
the same text always parses to the same float, so a level is found again
when the venue repeats it. Arithmetic on prices never happens here. When a
venue checksums its original strings (OKX), `keep_text` keeps them per level.
"""

from __future__ import annotations

from collections.abc import Sequence

Level = tuple[float, float]
TextLevel = tuple[str, str]

INF = float("inf")


class Book:
    """Bids and asks as price -> size dicts; size 0 deletes a level."""

    __slots__ = ("ask_lo", "ask_text", "asks", "bid_hi", "bid_text", "bids", "keep_text")

    def __init__(self, keep_text: bool = False) -> None:
        self.keep_text = keep_text
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_text: dict[float, TextLevel] = {}
        self.ask_text: dict[float, TextLevel] = {}
        #: bounds that make `crossed` cheap: no bid was set above `bid_hi`, no ask below `ask_lo` since they
        #: were last exact (deleting levels only moves the real best bid down and best ask up)
        self.bid_hi = -INF
        self.ask_lo = INF

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.bid_text.clear()
        self.ask_text.clear()
        self.bid_hi = -INF
        self.ask_lo = INF

    def apply(
        self,
        is_bid: bool,
        prices: Sequence[float],
        sizes: Sequence[float],
        price_text: Sequence[str | None] | None = None,
        size_text: Sequence[str | None] | None = None,
    ) -> None:
        """Set absolute sizes on one side; size 0 removes (removing an absent level is normal)."""
        if len(sizes) != len(prices):
            raise ValueError(f"{len(prices)} prices but {len(sizes)} sizes")
        self.apply_range(is_bid, prices, sizes, 0, len(prices))
        if self.keep_text and price_text is not None and size_text is not None:
            text = self.bid_text if is_bid else self.ask_text
            for price, size, ptext, stext in zip(prices, sizes, price_text, size_text, strict=True):
                if size == 0.0:
                    text.pop(price, None)
                else:
                    text[price] = (ptext or repr(price), stext or repr(size))

    def best_bid(self) -> Level | None:
        if not self.bids:
            return None
        price = self._exact_bid_hi()
        return price, self.bids[price]

    def best_ask(self) -> Level | None:
        if not self.asks:
            return None
        price = self._exact_ask_lo()
        return price, self.asks[price]

    def _exact_bid_hi(self) -> float:
        """The best bid price (bids not empty): `bid_hi` is above every bid, so when it is a bid it is the
        best; only when that level was deleted since does it take a scan."""
        hi = self.bid_hi
        if hi not in self.bids:
            hi = self.bid_hi = max(self.bids)
        return hi

    def _exact_ask_lo(self) -> float:
        """The best ask price (asks not empty): `ask_lo` made exact, as `_exact_bid_hi`."""
        lo = self.ask_lo
        if lo not in self.asks:
            lo = self.ask_lo = min(self.asks)
        return lo

    def apply_range(self, is_bid: bool, prices: Sequence[float], sizes: Sequence[float], start: int, end: int) -> None:
        """`apply` of rows start..end of a batch's price and size columns (no slice, no per-level object)."""
        pop = (self.bids if is_bid else self.asks).pop
        side = self.bids if is_bid else self.asks
        if is_bid:
            hi = self.bid_hi
            for i in range(start, end):
                size = sizes[i]
                if size == 0.0:
                    pop(prices[i], None)
                else:
                    price = prices[i]
                    side[price] = size
                    if price > hi:  # noqa: PLR1730 (max() is a call per level: slower)
                        hi = price
            self.bid_hi = hi
        else:
            lo = self.ask_lo
            for i in range(start, end):
                size = sizes[i]
                if size == 0.0:
                    pop(prices[i], None)
                else:
                    price = prices[i]
                    side[price] = size
                    if price < lo:  # noqa: PLR1730 (min() is a call per level: slower)
                        lo = price
            self.ask_lo = lo

    def crossed(self) -> bool:
        """True when both sides exist and the best bid is at or above the best ask."""
        if not (self.bids and self.asks):
            return False
        if self.bid_hi < self.ask_lo:
            return False  # the best bid is at most bid_hi, the best ask at least ask_lo
        # a bound still on the book is the best price itself: only a side whose best level went is scanned
        return self._exact_bid_hi() >= self._exact_ask_lo()

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        """The best `depth` bids (descending) and asks (ascending)."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks

    def top_text(self, depth: int) -> tuple[list[TextLevel], list[TextLevel]]:
        """The best `depth` levels per side as the venue's original (price, size) strings."""
        bids = [self.bid_text[p] for p in sorted(self.bid_text, reverse=True)[:depth]]
        asks = [self.ask_text[p] for p in sorted(self.ask_text)[:depth]]
        return bids, asks

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)
