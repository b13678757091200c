"""A mergeable latency histogram with log-linear buckets (HDR-like): bounded memory, ~0.4% error.

Values are non-negative integers (nanoseconds). Below 256 every value has its
own bucket; above, each power of two is split into 128 equal buckets, so a
bucket is at most 1/128 of its lower bound wide. A quantile is the midpoint of
the bucket holding the exact rank (clamped to the exact min and max), hence
within 1/256 of the true order statistic. Counts, sum, min and max are exact.
Histograms of different actors merge by adding bucket counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

_SUB_BITS = 7
_SUB = 1 << _SUB_BITS  # buckets per power of two
_EXACT = 2 * _SUB  # values below this have a bucket each
#: bucket indexes of every int64 value (the largest, 2**63 - 1, is in bucket 7295)
_INDEXES = _SUB * (63 - _SUB_BITS - 1) + _EXACT

#: The quantiles reported everywhere (summary, Prometheus): name -> q.
QUANTILES: dict[str, float] = {"p50": 0.5, "p99": 0.99, "p999": 0.999}


def bucket_index(value: int) -> int:
    """The bucket of a non-negative integer."""
    if value < _EXACT:
        return value
    shift = value.bit_length() - _SUB_BITS - 1
    return _SUB * shift + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """[lower, upper) of a bucket."""
    if index < _EXACT:
        return index, index + 1
    shift = index // _SUB - 1
    lower = (index - _SUB * shift) << shift
    return lower, lower + (1 << shift)


class Histogram:
    """Counts per bucket, plus exact count, sum, min and max. Negative values count as 0 (`underflow`)."""

    __slots__ = ("_buckets", "_pending", "count", "maximum", "minimum", "total", "underflow")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        #: counts `record_many` added per bucket index, not yet in `_buckets` (folded in when `buckets` is read)
        self._pending: np.ndarray[Any, np.dtype[np.int64]] | None = None
        self.count = 0
        self.total = 0
        self.minimum = 0
        self.maximum = 0
        self.underflow = 0

    @property
    def buckets(self) -> dict[int, int]:
        """Count per bucket index (buckets without observations absent)."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            buckets = self._buckets
            found = np.flatnonzero(pending)
            for index, count in zip(found.tolist(), pending[found].tolist(), strict=True):
                buckets[index] = buckets.get(index, 0) + count
        return self._buckets

    @buckets.setter
    def buckets(self, value: dict[int, int]) -> None:
        self._pending = None
        self._buckets = value

    def record(self, value: int) -> None:
        """Add one value (ns)."""
        if value < 0:
            self.underflow += 1
            value = 0
        index = bucket_index(value)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        if self.count == 0 or value < self.minimum:
            self.minimum = value
        self.maximum = max(self.maximum, value)
        self.count += 1
        self.total += value

    def record_many(self, values: Any) -> None:
        """Add an array of values (anything `numpy.asarray` turns into integers; no nulls), vectorised: the counts
        per bucket go to a dense array (`np.bincount`), and to the bucket dict only when it is read. A batch's
        latencies spread over hundreds of buckets, and a Python update of each cost as much as the rest."""
        array = np.asarray(values, dtype=np.int64)
        if array.size == 0:
            return
        negative = int(np.count_nonzero(array < 0))
        if negative:
            array = np.maximum(array, 0)
        # bit_length via frexp is exact below 2**53 ns (104 days)
        bits = np.frexp(array.astype(np.float64))[1].astype(np.int64)
        shift = np.maximum(bits - _SUB_BITS - 1, 0)
        indexes = np.where(array < _EXACT, array, _SUB * shift + (array >> shift))
        counts = np.bincount(indexes, minlength=_INDEXES)
        if self._pending is None:
            self._pending = counts
        else:
            self._pending += counts
        low, high = int(array.min()), int(array.max())
        self.minimum = low if self.count == 0 else min(self.minimum, low)
        self.maximum = max(self.maximum, high)
        self.count += int(array.size)
        # an int64 sum could wrap (values near 2**63: a clock gone wrong); Python ints then
        self.total += int(array.sum()) if high < (1 << 63) // array.size else sum(array.tolist())
        self.underflow += negative

    def merge(self, other: Histogram) -> None:
        """Add another histogram's observations to this one."""
        if other.count == 0:
            return
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count
        self.minimum = other.minimum if self.count == 0 else min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.count += other.count
        self.total += other.total
        self.underflow += other.underflow

    def quantile(self, q: float) -> float:
        """The value at quantile `q` in [0, 1] (ns); NaN when empty."""
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                lower, upper = bucket_bounds(index)
                middle = (lower + upper - 1) / 2
                return float(min(max(middle, self.minimum), self.maximum))
        return float(self.maximum)

    def percentiles(self) -> dict[str, float]:
        """p50, p99 and p999 (ns; NaN when empty)."""
        return {name: self.quantile(q) for name, q in QUANTILES.items()}

    def as_dict(self) -> dict[str, Any]:
        """A plain, JSON-able form (`from_dict` reads it back)."""
        return {
            "count": self.count,
            "sum": self.total,
            "min": self.minimum,
            "max": self.maximum,
            "underflow": self.underflow,
            "buckets": [[index, count] for index, count in sorted(self.buckets.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        histogram = cls()
        histogram.count = int(data["count"])
        histogram.total = int(data["sum"])
        histogram.minimum = int(data["min"])
        histogram.maximum = int(data["max"])
        histogram.underflow = int(data.get("underflow", 0))
        pairs: Iterable[Sequence[int]] = data["buckets"]
        histogram.buckets = {int(index): int(count) for index, count in pairs}
        return histogram

    def since(self, earlier: Histogram | None) -> Histogram:
        """The observations recorded after `earlier`, an earlier copy of this histogram (all of them when
        `earlier` is None or not an earlier state). Counts and sum are exact; min and max are the bounds of
        the buckets left, within this histogram's own."""
        if earlier is None or earlier.count == 0 or earlier.count > self.count:
            return self.copy()
        out = Histogram()
        for index, count in self.buckets.items():
            added = count - earlier.buckets.get(index, 0)
            if added > 0:
                out.buckets[index] = added
        out.count = sum(out.buckets.values())
        if out.count:
            out.total = max(self.total - earlier.total, 0)
            out.minimum = max(bucket_bounds(min(out.buckets))[0], self.minimum)
            out.maximum = min(bucket_bounds(max(out.buckets))[1] - 1, self.maximum)
            out.underflow = max(self.underflow - earlier.underflow, 0)
        return out

    def copy(self) -> Histogram:
        return Histogram.from_dict(self.as_dict())
