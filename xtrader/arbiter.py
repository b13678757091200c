"""First arrival wins across redundant connections of one stream.

Each update has a key that is identical on every connection carrying the same
stream (the venue's sequence id; the trade id for trades). The first
connection to deliver a key wins it; later copies are duplicates. A key is a
tuple whose first element names its table ("trades", "l2", "bbo"; see
`xtrader.arbiter_batches.UpdateKeys`). Keys are remembered in one bounded LRU
per table (so memory is flat, and a busy table never evicts another's keys)
for at most `ttl_ns` (so a sequence reset can reuse a key later), plus
`grace_ns`: how far the slowest connection is behind the fastest (set by
`BatchArbiter`), so that a connection working off a backlog longer than the
TTL still finds the copies its partner delivered long ago.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

_NO_TABLE = object()  # (no key's table: the first key always looks its table up)


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

    def __init__(self, capacity: int = 200_000, ttl_ns: int = 60_000_000_000) -> None:
        self.capacity = capacity
        self.ttl_ns = ttl_ns
        #: table -> key -> when it was first delivered
        self.tables: dict[Hashable, OrderedDict[Hashable, int]] = {}
        self.stats = ArbiterStats()
        #: added to ttl_ns while the connections are that far apart (`xtrader.arbiter_batches.BatchArbiter`)
        self.grace_ns = 0

    def register(self, connection: str) -> None:
        """Make a connection known (it shows in `wins` even before it wins anything)."""
        self.stats.wins.setdefault(connection, 0)

    def offer(self, connection: str, key: Hashable, now_ns: int = 0) -> bool:
        """True when `connection` is first to deliver `key` (keep it); False for a duplicate."""
        return self.offer_many(connection, (key,), now_ns)[0]

    def offer_many(self, connection: str, keys: Iterable[Hashable], now_ns: int = 0) -> list[bool]:
        """`offer` of each key in turn, in one loop (a batch's keys: the lookups that do not change from key to
        key are done once). A key's first delivery wins; a copy within `ttl_ns` + `grace_ns` of it is a
        duplicate; each table keeps its `capacity` newest keys."""
        limit = self.ttl_ns + self.grace_ns if self.ttl_ns else None
        capacity, tables = self.capacity, self.tables
        verdicts: list[bool] = []
        keep = verdicts.append
        table: Hashable = _NO_TABLE
        seen: OrderedDict[Hashable, int] = OrderedDict()
        duplicates = 0
        for key in keys:
            name = key[0] if isinstance(key, tuple) and key else None
            if name is not table:
                table = name
                found = tables.get(name)
                seen = tables[name] = OrderedDict() if found is None else found
            first_ns = seen.get(key)
            if first_ns is None:
                seen[key] = now_ns  # a new key goes to the end
            elif limit is None or now_ns - first_ns <= limit:
                duplicates += 1
                keep(False)
                continue
            else:  # expired: delivered again, it is new
                seen[key] = now_ns
                seen.move_to_end(key)
            if len(seen) > capacity:
                seen.popitem(last=False)
            keep(True)
        if verdicts:
            unique = len(verdicts) - duplicates
            stats = self.stats
            stats.duplicates += duplicates
            stats.unique += unique
            stats.wins[connection] = stats.wins.get(connection, 0) + unique
        return verdicts

    def expire(self, now_ns: int) -> int:
        """Forget every key older than `ttl_ns` (the number forgotten). `offer` already treats such a key as new,
        so no verdict changes; without this they stayed until `capacity` pushed them out, and an arbiter's
        memory grew for minutes (the soak: 240 -> 410 MB per arbiter in 9 minutes at 1.4k msg/s a stream).
        Keys are in order of delivery time (each insert goes to the end), so only the oldest are looked at."""
        if not self.ttl_ns or now_ns <= self.ttl_ns + self.grace_ns:
            return 0
        horizon = now_ns - self.ttl_ns - self.grace_ns
        forgotten = 0
        for seen in self.tables.values():
            while seen:
                key, first_ns = next(iter(seen.items()))
                if first_ns >= horizon:
                    break
                del seen[key]
                forgotten += 1
        return forgotten

    def remember(self, key: Hashable, now_ns: int = 0) -> bool:
        """Record `key` as delivered already (by no connection: a restart's rebuild); True when it was new."""
        table = key[0] if isinstance(key, tuple) and key else None
        seen = self.tables.get(table)
        if seen is None:
            seen = self.tables[table] = OrderedDict()
        new = key not in seen
        seen[key] = now_ns
        seen.move_to_end(key)
        if len(seen) > self.capacity:
            seen.popitem(last=False)
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
