"""First arrival wins across redundant connections of one stream.

Each update has a key that is identical on every connection carrying the same
stream (the venue's sequence id; the trade id for trades). The first
connection to deliver a key wins it; later copies are duplicates. A key is a
tuple whose first element names its table ("trades", "l2", "bbo"; see
`xtrader.arbiter_batches.UpdateKeys`). Keys are remembered in one bounded
first-in-first-out table per table (a plain dict, in delivery order; so memory
is flat, and a busy table never evicts another's keys)
for at most `ttl_ns` (so a sequence reset can reuse a key later), plus
`grace_ns`: how far the slowest connection is behind the fastest (set by
`BatchArbiter`), so that a connection working off a backlog longer than the
TTL still finds the copies its partner delivered long ago.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from xtrader.venues.compiled_columns import compiled

#: used entries, at least, before an order is compacted (`_advance`; the C loop's COMPACT_AT)
COMPACT_AT = 1024
_NO_TABLE = object()  # no table given / looked up yet (so the first key always looks its table up)

try:  # the offer loop in C (xtrader/_arbiter.c): the same dict operations, without the interpreter per key
    from xtrader import _arbiter
except ImportError:  # not built: the Python loop
    _arbiter = None  # type: ignore[assignment]
#: the C loop, unless not built or turned off (`XTRADER_PURE_PYTHON=1`, as for the compiled parsers)
_c_offer: Any = _arbiter.offer if compiled(_arbiter) else None


@dataclass
class ArbiterStats:
    unique: int = 0
    duplicates: int = 0
    wins: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "connections": len(self.wins),
            "unique": self.unique,
            "duplicates": self.duplicates,
            "wins": dict(sorted(self.wins.items())),
        }


class Arbiter:
    """Dedup by key across connections; counts wins per connection.

    Args:
        capacity: keys remembered per table (its oldest evicted first).
        ttl_ns: a key older than this (plus `grace_ns`) is forgotten (0: no expiry).
    """

    #: the offer loop in C (`xtrader/_arbiter.c`), None for the Python loop (not built, or XTRADER_PURE_PYTHON=1)
    c_offer: Any = _c_offer

    def __init__(self, capacity: int = 200_000, ttl_ns: int = 60_000_000_000) -> None:
        self.capacity = capacity
        self.ttl_ns = ttl_ns
        #: table -> key -> when it was first delivered, oldest first (a plain dict keeps insertion order; a key
        #: delivered again after its TTL moves to the end)
        self.tables: dict[Hashable, dict[Hashable, int]] = {}
        #: table -> its keys' delivery order: [keys (a list), head (the oldest's index), moved (key -> how many
        #: older entries of it the list still holds: delivered again after its TTL)]. Eviction and expiry take
        #: keys from the head, so forgetting a key costs the same at any table size. Walking the dict from its
        #: front instead (it was) also walks the holes its earlier deletions left, until the dict is rebuilt:
        #: 473 against 285 ns a key offered at 200k keys, evicting against not (the C loop, /tmp microbenchmark).
        self.orders: dict[Hashable, list[Any]] = {}
        self.stats = ArbiterStats()
        #: added to ttl_ns while the connections are that far apart (`xtrader.arbiter_batches.BatchArbiter`)
        self.grace_ns = 0

    def register(self, connection: str) -> None:
        """Make a connection known (it shows in `wins` even before it wins anything)."""
        self.stats.wins.setdefault(connection, 0)

    def offer(self, connection: str, key: Hashable, now_ns: int = 0) -> bool:
        """True when `connection` is first to deliver `key` (keep it); False for a duplicate."""
        return self.offer_many(connection, (key,), now_ns)[0]

    def offer_many(
        self, connection: str, keys: Iterable[Hashable], now_ns: int = 0, table: Hashable = _NO_TABLE
    ) -> list[bool]:
        """`offer` of each key in turn, in one loop (a batch's keys: the lookups that do not change from key to
        key are done once). A key's first delivery wins; a copy within `ttl_ns` + `grace_ns` of it is a
        duplicate; each table keeps its `capacity` newest keys, evicted past that at the end of the call (so a
        key is remembered at least until `capacity` newer keys were offered in later calls). `table`: every
        key's table (keys that are not tuples, e.g. `xtrader.update_ids`), instead of each key's first item."""
        limit = self.ttl_ns + self.grace_ns if self.ttl_ns else None
        if self.c_offer is not None:
            listed = keys if isinstance(keys, list) else list(keys)
            fixed = () if table is _NO_TABLE else (table,)
            done = self.c_offer(
                self.tables, self.orders, listed, now_ns, -1 if limit is None else limit, self.capacity, *fixed
            )
            return self._settle(connection, *done)
        verdicts: list[bool] = []
        keep = verdicts.append
        seen: dict[Hashable, int] = {}
        state: list[Any] = [[], 0, {}]
        order: list[Any] = state[0]
        touched: list[tuple[dict[Hashable, int], list[Any]]] = []
        duplicates = 0
        named: Hashable = _NO_TABLE
        for key in keys:
            name = _table_of(key) if table is _NO_TABLE else table
            if name is not named:
                named = name
                seen, state = self._table(name)
                order = state[0]
                touched.append((seen, state))
            first_ns = seen.get(key)
            if first_ns is None:
                seen[key] = now_ns  # a new key goes to the end
            elif limit is None or now_ns - first_ns <= limit:
                duplicates += 1
                keep(False)
                continue
            else:  # expired: delivered again, it is new (and the newest)
                del seen[key]
                seen[key] = now_ns
                moved = state[2]
                moved[key] = moved.get(key, 0) + 1
            order.append(key)
            keep(True)
        for seen, state in touched:
            self._evict(seen, state)
        return self._settle(connection, verdicts, duplicates)

    def _table(self, name: Hashable) -> tuple[dict[Hashable, int], list[Any]]:
        """A table's keys and its order (both made on first use)."""
        seen = self.tables.get(name)
        if seen is None:
            seen = self.tables[name] = {}
        state = self.orders.get(name)
        if state is None:
            state = self.orders[name] = [[], 0, {}]
        return seen, state

    def _settle(self, connection: str, verdicts: list[bool], duplicates: int) -> list[bool]:
        """After a call's keys: count the verdicts."""
        if verdicts:
            unique = len(verdicts) - duplicates
            stats = self.stats
            stats.duplicates += duplicates
            stats.unique += unique
            stats.wins[connection] = stats.wins.get(connection, 0) + unique
        return verdicts

    def _evict(self, seen: dict[Hashable, int], state: list[Any]) -> None:
        """Drop the oldest keys past `capacity`, taken from the order's head."""
        excess = len(seen) - self.capacity
        if excess <= 0:
            return
        order, head, moved = state
        while excess > 0:
            key = order[head]
            head += 1
            if _older_entry(moved, key):
                continue
            if seen.pop(key, _NO_TABLE) is not _NO_TABLE:
                excess -= 1
        _advance(state, head)

    def expire(self, now_ns: int) -> int:
        """Forget every key older than `ttl_ns` (the number forgotten). `offer` already treats such a key as new,
        so no verdict changes; without this they stayed until `capacity` pushed them out, and an arbiter's
        memory grew for minutes (the soak: 240 -> 410 MB per arbiter in 9 minutes at 1.4k msg/s a stream).
        Keys are in order of delivery time (each insert goes to the end), so only the oldest are looked at, in
        one walk from the front."""
        if not self.ttl_ns or now_ns <= self.ttl_ns + self.grace_ns:
            return 0
        horizon = now_ns - self.ttl_ns - self.grace_ns
        forgotten = 0
        for name, seen in self.tables.items():
            state = self._table(name)[1]
            order, head, moved = state
            end = len(order)
            while head < end:
                key = order[head]
                if not _older_entry(moved, key):
                    first_ns = seen.get(key)
                    if first_ns is not None:
                        if first_ns >= horizon:
                            break
                        del seen[key]
                        forgotten += 1
                head += 1
            _advance(state, head)
        return forgotten

    def remember(self, key: Hashable, now_ns: int = 0, table: Hashable = _NO_TABLE) -> bool:
        """Record `key` as delivered already (by no connection: a restart's rebuild); True when it was new.
        `table`: as for `offer_many`."""
        seen, state = self._table(_table_of(key) if table is _NO_TABLE else table)
        new = seen.pop(key, None) is None
        if not new:
            moved = state[2]
            moved[key] = moved.get(key, 0) + 1
        seen[key] = now_ns  # the newest
        state[0].append(key)
        self._evict(seen, state)
        return new

    def keys(self) -> set[Hashable]:
        """Every key remembered, all tables together."""
        return {key for seen in self.tables.values() for key in seen}

    def remembered(self) -> dict[Hashable, int]:
        """Keys remembered per table."""
        return {table: len(seen) for table, seen in self.tables.items()}

    def least_winning(self) -> str | None:
        """The connection with the fewest wins (the rotation candidate), if there are two or more."""
        wins = self.stats.wins
        if len(wins) < 2:
            return None
        return min(wins, key=lambda c: (wins[c], c))

    def forget(self, connection: str) -> None:
        """Drop a replaced connection from the win table."""
        self.stats.wins.pop(connection, None)


def _table_of(key: Hashable) -> Hashable:
    """A key's table: a tuple's first item, else None."""
    return key[0] if isinstance(key, tuple) and key else None


def _older_entry(moved: dict[Hashable, int], key: Hashable) -> bool:
    """True when this entry of an order is an older one of a key delivered again (it is used up)."""
    if not moved:
        return False
    count = moved.get(key)
    if count is None:
        return False
    if count > 1:
        moved[key] = count - 1
    else:
        del moved[key]
    return True


def _advance(state: list[Any], head: int) -> None:
    """Move an order's head; drop the used entries once they are half of it (each entry is moved once)."""
    order = state[0]
    if head >= COMPACT_AT and head * 2 >= len(order):
        del order[:head]
        head = 0
    state[1] = head
