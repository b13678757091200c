"""One-time costs of the hot path, paid when an actor starts instead of by its first data batch.

pyarrow imports pandas (about 300 modules: 0.2-0.5 s on an idle 2-core machine, seconds on a busy one)
the first time an Arrow array is converted to numpy (`np.asarray(array)`, `array.to_numpy()`), and loads
compute kernels on their first call. Every stage converts on its first batch (the connector's
dedup, the book's sync, the sink's partitioning and latency), and a batch crosses the stages one
after the other: a capture's first batches were late by the sum, about 1 s on an idle machine
(issue 8: `xtrader demo --duration 20` printed a p99 of 945 ms, every row late being a first batch).
Each actor calls `warm_up()` in its constructor; the driver waits for every actor to be constructed
before any connector subscribes, so no data waits for it.
"""

from __future__ import annotations


def warm_up() -> None:
    """Import and initialise what the first Arrow <-> numpy conversions and compute calls would."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ints = pa.array([0, 1], pa.int64())
    np.asarray(ints)
    ints.to_numpy()
    pa.chunked_array([ints]).to_numpy()
    pc.unique(pa.array(["a"], pa.string())).to_pylist()
    pc.index_in(pa.array(["a"], pa.string()), pa.array(["a"], pa.string())).to_numpy()
    pa.array([0], pa.timestamp("ns", "UTC")).cast(pa.int64())


__all__ = ["warm_up"]
