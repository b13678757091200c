"""One local Ray for the whole test session (ray.init takes seconds; actors are ~65 MB each)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(
        num_cpus=8,
        include_dashboard=False,
        namespace="xtrader-tests",
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        yield
    finally:
        ray.shutdown()
