"""Arrow's memory pool in actor processes (`xtrader.memory_pool`): the system allocator unless the user chose one.

Each case runs in a fresh interpreter: the default pool is a process-wide choice.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xtrader.memory_pool import ENV

PROBE = (
    "import pyarrow as pa; from xtrader.memory_pool import use_memory_pool; "
    "before = pa.default_memory_pool().backend_name; used = use_memory_pool(); "
    "print(before, used, pa.default_memory_pool().backend_name, pa.array([1, 2, 3]).buffers()[1].size)"
)


def probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != ENV}
    command = [sys.executable, "-c", PROBE]
    done = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_an_actor_process_allocates_arrow_buffers_from_jemalloc_else_the_system_allocator() -> None:
    import pyarrow as pa

    expected = "jemalloc" if "jemalloc" in pa.supported_memory_backends() else "system"
    _, used, after, _ = probe()
    assert (used, after) == (expected, expected)


@pytest.mark.parametrize("pool", ["mimalloc", "jemalloc", "system"])
def test_arrow_default_memory_pool_set_by_the_user_is_kept(pool: str) -> None:
    import pyarrow as pa

    if pool not in pa.supported_memory_backends():
        pytest.skip(f"this pyarrow has no {pool} pool")
    _, used, after, _ = probe(**{ENV: pool})
    assert (used, after) == (pool, pool)
