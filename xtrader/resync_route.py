"""Where a book's resync request goes: a connector that carries the symbol's book, the next one on a retry.

The book of a redundant stream gets its l2 from the arbiter, under the arbiter's
name, so the name a batch came under is not always a connector. A request goes
to a connector whose l2 subscriptions hold the symbol (the connector that
delivered it first, when it is one); each retry goes to the next such
connector, so one connection that cannot resubscribe (or whose REST fetch
keeps failing) does not hold the book invalid for ever. A symbol no connector
is known to carry (subscribed at run time) is asked of every connector in
turn, the ones carrying l2 first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class ResyncRouter:
    """Picks the connector for each resync request of a venue's books.

    Args:
        carriers: connection id -> the symbols of its l2 subscriptions (empty: unknown, every
            request goes back where the data came from).
    """

    def __init__(self, carriers: Mapping[str, Iterable[str]] | None = None) -> None:
        self.carriers: dict[str, set[str]] = {}
        self.counts: dict[str, int] = {}  # symbol -> how many connections carry it (kept with `carriers`)
        self.attempts: dict[str, int] = {}  # symbol -> requests routed since its book was last valid
        self.set_carriers(carriers or {})

    def set_carriers(self, carriers: Mapping[str, Iterable[str]]) -> None:
        """Replace the known connections and the l2 symbols each carries."""
        self.carriers = {connection: set(symbols) for connection, symbols in carriers.items()}
        self.counts = {}
        for symbols in self.carriers.values():
            for symbol in symbols:
                self.counts[symbol] = self.counts.get(symbol, 0) + 1

    def carry(self, connection: str, symbol: str) -> None:
        """`connection` delivered `symbol`'s book itself (no arbiter between): it carries it."""
        symbols = self.carriers.get(connection)
        if symbols is not None and symbol not in symbols:
            symbols.add(symbol)
            self.counts[symbol] = self.counts.get(symbol, 0) + 1

    def drop(self, connection: str, symbol: str) -> None:
        """`connection` no longer carries `symbol`'s book (unsubscribed)."""
        symbols = self.carriers.get(connection)
        if symbols is not None and symbol in symbols:
            symbols.discard(symbol)
            self.counts[symbol] -= 1

    def carrying(self, symbol: str) -> int:
        """How many connections' l2 subscriptions hold `symbol` (2 or more: a redundant stream). A lookup: the book
        service asks it for each message that does not take the fast path."""
        return self.counts.get(symbol, 0)

    def candidates(self, symbol: str, hint: str = "") -> list[str]:
        """The connections to ask, in order: the hint first when it carries the symbol."""
        carrying = sorted(c for c, symbols in self.carriers.items() if symbol in symbols)
        if not carrying:
            carrying = sorted(self.carriers, key=lambda c: (not self.carriers[c], c))
        if hint in carrying:
            carrying.remove(hint)
            carrying.insert(0, hint)
        return carrying

    def route(self, symbol: str, hint: str = "") -> str:
        """The connection to ask for `symbol`'s book now; each call for the same symbol moves to the next one.

        `hint` is the name the symbol's last batch came under; it is the answer when no
        connection is known (a service fed without connectors: tests, replays).
        """
        candidates = self.candidates(symbol, hint)
        if not candidates:
            return hint
        attempt = self.attempts.get(symbol, 0)
        self.attempts[symbol] = attempt + 1
        return candidates[attempt % len(candidates)]

    def done(self, symbol: str) -> None:
        """`symbol`'s book is valid again: its next request starts from the first candidate."""
        self.attempts.pop(symbol, None)
