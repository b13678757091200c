"""One local Ray for the whole test session (ray.init takes seconds; actors are ~65 MB each).

Token authentication with a token of the session's own: before anything starts a Ray, the session
generates a token into a temp dir and points RAY_AUTH_TOKEN_PATH at it (RAY_AUTH_MODE=token), so the
test session's Ray, `xtrader demo` / `python -m jobs.capture` subprocesses and their local Rays use it.
Nothing reads or writes `~/.ray/auth_token`: the suite behaves the same on a machine that never ran Ray.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from tests.cluster.private_ray import token_env, write_token

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@pytest.fixture(scope="session", autouse=True)
def ray_auth_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """RAY_AUTH_MODE=token with a fresh token in a temp dir, for this process and every child; restored after."""
    saved = {name: os.environ.get(name) for name in AUTH_VARS}
    path = write_token(tmp_path_factory.mktemp("ray-auth") / "auth_token")
    env = token_env(path)
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update({name: env[name] for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")})
    try:
        yield str(path)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def ray_session(ray_auth_token: str) -> Iterator[None]:
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
