"""`hot_path`: xtrader's parse + normalize + batch + book sync over the feed's frames, in memory, one process.

What a connector and the book actor do per frame, without the network or Ray: a `Receipt` per frame
(`clock.now`, as the connector takes it), `venue.parser(columns)` into column buffers, a flush to Arrow batches whenever
the pipeline's batch size is buffered, and every batch fed to the book actor's service (`BookService.on_batch`:
the sync, the receipt -> book latency histogram, the stored l2 rows it forwards). The frames are a pre-generated
sequence, so each round starts from a fresh service loaded with the REST snapshots taken just before it (not
timed).
"""

from __future__ import annotations

import time
from typing import Any

from xtrader.bench.feed import VENUE
from xtrader.bench.report import rates

CONNECTION = "bench"


def hot_path(data: list[bytes], snapshots: dict[str, bytes], seconds: float, batch_rows: int) -> dict[str, Any]:
    """Rounds over `data` for `seconds` of wall time; rates over the timed part of the rounds."""
    from xtrader.bookservice import BookService
    from xtrader.clock import now
    from xtrader.errors import ParseError
    from xtrader.venues import venue as make_venue
    from xtrader.venues.compiled_columns import CompiledColumns

    v = make_venue(VENUE)
    n = rejects = gaps = 0
    wall = cpu = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or n == 0:
        service = BookService.for_venue(v)
        for symbol, body in snapshots.items():
            out = v.columns()
            v.parse_snapshot(body, symbol, now(), out)
            service.on_batch(CONNECTION, out.flush(), rest=True)
        fed = 0
        applied_before = service.books.counters().updates_applied
        out = v.columns()
        parse, apply = v.parser(out), service.on_batch  # as the connector parses
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for frame in data:
            try:
                parse(frame, now())
            except ParseError:
                rejects += 1
            if out.rows() >= batch_rows:
                fed += _messages(apply, out.flush())
        fed += _messages(apply, out.flush())
        wall += time.perf_counter() - start_wall
        cpu += time.process_time() - start_cpu
        n += len(data)
        gaps += fed - (service.books.counters().updates_applied - applied_before)
    result = rates(n, wall, cpu)
    parser = "compiled" if isinstance(out, CompiledColumns) else "python"  # the columns of the last round
    result.update({"rejects": rejects, "not_applied": gaps, "batch_rows": batch_rows, "parser": parser})
    return result


def _messages(apply: Any, batches: Any) -> int:
    """Feed one flush to the service; its number of l2 messages."""
    apply(CONNECTION, batches)
    return 0 if batches.l2_messages is None else int(batches.l2_messages.num_rows)
