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


class Book:
    """Bids and asks as price -> size dicts; size 0 deletes a level."""

    __slots__ = ("ask_text", "asks", "bid_text", "bids", "keep_text")

    def __init__(self, keep_text: bool = False) -> None:
        self.keep_text = keep_text
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_text: dict[float, TextLevel] = {}
        self.ask_text: dict[float, TextLevel] = {}

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.bid_text.clear()
        self.ask_text.clear()

    def apply(
        self,
        is_bid: bool,
        prices: Sequence[float],
        sizes: Sequence[float],
        price_text: Sequence[str | None] | None = None,
        size_text: Sequence[str | None] | None = None,
    ) -> None:
        """Set absolute sizes on one side; size 0 removes (removing an absent level is normal)."""
        side = self.bids if is_bid else self.asks
        for price, size in zip(prices, sizes, strict=True):
            if size == 0.0:
                side.pop(price, None)
            else:
                side[price] = size
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
        price = max(self.bids)
        return price, self.bids[price]

    def best_ask(self) -> Level | None:
        if not self.asks:
            return None
        price = min(self.asks)
        return price, self.asks[price]

    def crossed(self) -> bool:
        """True when both sides exist and the best bid is at or above the best ask."""
        return bool(self.bids and self.asks) and max(self.bids) >= min(self.asks)

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
