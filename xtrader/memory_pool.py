"""Arrow's memory pool in xtrader's actor processes: jemalloc, unless `ARROW_DEFAULT_MEMORY_POOL` says otherwise.

Why: `perf record` on the actors of `xtrader bench` put 13-19 % of the Parquet sink's CPU in the kernel zeroing
fresh huge pages (`clear_page_erms` under `do_huge_pmd_anonymous_page`) for mimalloc, pyarrow's default pool on
Linux, as the Parquet writer grew its buffers. In five interleaved `xtrader bench` rounds the sink used 0.77 CPU-s
with jemalloc and 0.74 with the system allocator against 0.86 with mimalloc (less in 4 of 5 rounds); the four
actors together 2-4 % less, within the machine's noise (benchmarks/RESULTS.md, "Arrow's memory pool"). Of the
two, jemalloc: the same gain, from an allocator made to give memory back without fragmenting over weeks of
multi-threaded work (RSS stayed flat over 5 minutes at 10,000 msg/s). A pyarrow built without it
(`pa.supported_memory_backends()`) gets the system allocator.

Arrow's own knob still decides when it is set: `ARROW_DEFAULT_MEMORY_POOL=mimalloc` (or `system`) in an
actor's environment keeps that pool (on a cluster, set it where `ray start` runs, or in the job's runtime_env).
"""

from __future__ import annotations

import os

#: Arrow's environment variable naming the default pool; when set, it is left to decide
ENV = "ARROW_DEFAULT_MEMORY_POOL"


def use_memory_pool() -> str:
    """Make jemalloc (else the system allocator) this process's default Arrow pool, unless `ENV` names one.

    Call it once, when an actor starts, before its data arrives: buffers allocated before stay in the pool
    they came from (which is harmless). Returns the backend in use ("jemalloc", "system", "mimalloc").
    """
    import pyarrow as pa

    if not os.environ.get(ENV):
        jemalloc = "jemalloc" in pa.supported_memory_backends()
        pa.set_memory_pool(pa.jemalloc_memory_pool() if jemalloc else pa.system_memory_pool())
    return str(pa.default_memory_pool().backend_name)
