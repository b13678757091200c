"""Proof that a replacement websocket overlaps the one it replaces (make-before-break), pure.

While two links carry the same streams, every frame of each is noted by hash.
The first frame to arrive on both proves the overlap: the venue sends a
connection's frames in order, so the old link has then delivered everything
sent before the new one subscribed, and can be closed without a gap. Later
frames seen twice are counted as duplicates (the arbiter drops them).
"""

from __future__ import annotations

from typing import Literal

Side = Literal["old", "new"]

#: frame hashes each side remembers (bounds memory if the links never meet)
MAX_SEEN = 200_000


class Handover:
    """Compares the frames of an old and a new link."""

    __slots__ = ("_seen", "duplicates", "max_seen", "proven_ns")

    def __init__(self, max_seen: int = MAX_SEEN) -> None:
        self.max_seen = max_seen
        self.duplicates = 0
        #: monotonic time the first frame arrived on both links; None until then
        self.proven_ns: int | None = None
        self._seen: dict[Side, set[int]] = {"old": set(), "new": set()}

    @property
    def proven(self) -> bool:
        return self.proven_ns is not None

    def observe(self, side: Side, frame: bytes, now_ns: int) -> bool:
        """Note a frame of one link; True when the other link already delivered it (a duplicate)."""
        key = hash(frame)
        theirs = self._seen["new" if side == "old" else "old"]
        if key in theirs:
            theirs.discard(key)
            self.duplicates += 1
            if self.proven_ns is None:
                self.proven_ns = now_ns
            return True
        mine = self._seen[side]
        if len(mine) < self.max_seen:
            mine.add(key)
        return False
