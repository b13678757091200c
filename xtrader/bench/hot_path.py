"""`hot_path`: xtrader's parse + normalize + batch + book sync over the feed's frames, in memory, one process.

What a connector and the book actor do per frame, without the network or Ray: a `Receipt` per frame,
`venue.parse` into column buffers, a flush to Arrow batches whenever the pipeline's batch size is buffered,
and every l2 batch applied to the books (`Books.apply_batch`). The frames are a pre-generated sequence, so
each round starts from fresh books loaded with the REST snapshots taken just before it (not timed).
"""

from __future__ import annotations

import time
from typing import Any

from xtrader.bench.feed import VENUE
from xtrader.bench.report import rates

CONNECTION = "bench"


def hot_path(data: list[bytes], snapshots: dict[str, bytes], seconds: float, batch_rows: int) -> dict[str, Any]:
    """Rounds over `data` for `seconds` of wall time; rates over the timed part of the rounds."""
    from xtrader.clock import Receipt
    from xtrader.errors import ParseError
    from xtrader.sync import Books, Verdict
    from xtrader.venues import venue as make_venue

    v = make_venue(VENUE)
    n = rejects = gaps = 0
    wall = cpu = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or n == 0:
        books = Books(v.sync_kind, keep_text=v.keep_text, checksum=getattr(v, "book_checksum", None))
        for symbol, body in snapshots.items():
            out = v.columns()
            v.parse_snapshot(body, symbol, Receipt(time.time_ns(), time.perf_counter_ns()), out)
            batch = out.flush()
            books.apply_batch(CONNECTION, batch.l2, batch.l2_messages, rest=True)
        out = v.columns()
        parse, apply = v.parse, books.apply_batch
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for frame in data:
            try:
                parse(frame, Receipt(time.time_ns(), time.perf_counter_ns()), out)
            except ParseError:
                rejects += 1
            if out.rows() >= batch_rows:
                batches = out.flush()
                if batches.l2 is not None and batches.l2_messages is not None:
                    for _, _, verdict, _ in apply(CONNECTION, batches.l2, batches.l2_messages):
                        gaps += verdict is not Verdict.APPLY
        batches = out.flush()
        if batches.l2 is not None and batches.l2_messages is not None:
            for _, _, verdict, _ in apply(CONNECTION, batches.l2, batches.l2_messages):
                gaps += verdict is not Verdict.APPLY
        wall += time.perf_counter() - start_wall
        cpu += time.process_time() - start_cpu
        n += len(data)
    result = rates(n, wall, cpu)
    result.update({"rejects": rejects, "not_applied": gaps, "batch_rows": batch_rows})
    return result
