"""Arrow RecordBatches cross actor calls as Arrow IPC bytes.

Ray pickles a RecordBatch argument with protocol 5 and hands each of its Arrow buffers over out of band; on this
machine (Ray 2.60, benchmarks/RESULTS.md "What one actor call costs") a call carrying a RecordBatch cost about
2.1 ms of CPU (caller + actor) whatever its size, 300 rows or 2,000, against about 0.7 ms for a call carrying an
int. Written as one IPC stream into plain bytes, a batch of up to Ray's inline limit
(`max_direct_call_object_size`, 100 KB by default) travels inside the call itself: about 1.07 ms for a 300-row
l2 batch, 1.22 ms for a dict of three. The IPC stream keeps the schema (with its field metadata), dictionaries
and nulls, and writes only a slice's own rows.

Ray's inline limit is raised to `INLINE_BYTES` (1 MiB) wherever xtrader starts a Ray of its own (`RAY_SYSTEM_CONFIG`:
`jobs.run.init_options`, the bench) and in cluster.yaml (`RAY_max_direct_call_object_size` before `ray start`):
a 2,000-row l2 batch is about 140 KB of IPC, and inline it cost 1.35 ms a call instead of 2.1 ms through the
object store (`benchmarks/ray_call.py`). A cluster started otherwise keeps Ray's 100 KB and sends such batches
through the object store, as before: slower, not wrong.

`install()` registers the reducer in the calling process; every actor calls it in its constructor (the
sender's process decides how an argument is serialized; the receiver needs nothing, the reducer names
`batch_from_ipc`). Outside Ray it does nothing, so the actor classes stay testable without it.
"""

from __future__ import annotations

import pyarrow as pa

#: Ray's `max_direct_call_object_size` where xtrader starts Ray: an argument up to this size travels in the call
INLINE_BYTES = 1 << 20
#: `ray.init(_system_config=...)` of a Ray xtrader starts itself
RAY_SYSTEM_CONFIG: dict[str, int] = {"max_direct_call_object_size": INLINE_BYTES}

_installed = False


def batch_to_ipc(batch: pa.RecordBatch) -> bytes:
    """One RecordBatch as an Arrow IPC stream (schema + the batch's own rows)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())  # (bytes already; typed for mypy: pyarrow is untyped)


def batch_from_ipc(data: bytes) -> pa.RecordBatch:
    """The RecordBatch of `batch_to_ipc` (zero-copy over `data`)."""
    return pa.ipc.open_stream(data).read_next_batch()


def install() -> None:
    """Send RecordBatches as IPC bytes from this process's Ray calls (idempotent; no-op without Ray)."""
    global _installed
    if _installed:
        return
    import ray

    if not ray.is_initialized():
        return
    ray.util.register_serializer(pa.RecordBatch, serializer=batch_to_ipc, deserializer=batch_from_ipc)
    _installed = True
