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
from pathlib import Path
from typing import Any

import pytest

from actors._wire import RAY_SYSTEM_CONFIG
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
    _reload_ray_auth()
    try:
        yield str(path)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _reload_ray_auth()


def _reload_ray_auth() -> None:
    """Make this process's Ray see the auth variables as they are now.

    Ray reads RAY_AUTH_MODE when it is imported (collection imports it here, before any fixture runs)
    and caches the token it loaded; this is what Ray itself does when it turns token mode on.
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture(scope="session")
def ray_session(ray_auth_token: str) -> Iterator[None]:
    import ray

    ray.init(
        num_cpus=8,
        include_dashboard=False,
        namespace="xtrader-tests",
        log_to_driver=False,
        logging_level=logging.WARNING,
        _system_config=dict(RAY_SYSTEM_CONFIG),  # as a capture starts its own Ray (`actors._wire`)
    )
    try:
        yield
    finally:
        ray.shutdown()


# -- what every end-to-end test checks the same way ----------------------------------------------------------------

#: the most a capture of the simulator may take to reach its stop condition (a busy 2-core machine is slow)
UNTIL_TIMEOUT_S = 300.0
#: rows per table and venue a capture waits for: every table then has rows of every venue
MIN_ROWS = 20


def expected_written(entry: dict[str, Any], sink: str = "parquet") -> int:
    """The rows a sink must hold for one `tables.TABLE.VENUE` summary entry: every row the simulator sent
    plus the REST snapshot rows the books started from, less the rows accounted as lost (events rows)."""
    return int(entry["sent"]) + int(entry["rest"]) - int(entry["accounted"][sink])


def assert_written(summary: dict[str, Any], sinks: tuple[str, ...] = ("parquet",), *, accounted: bool = False) -> None:
    """Every table of every venue: the simulator sent rows, and every sink holds exactly what it should:
    sent + rest - accounted; and (unless `accounted`: a test that loses rows on purpose) nothing lost."""
    for table, venues in summary["tables"].items():
        for venue, entry in venues.items():
            assert entry["sent"] is not None and entry["sent"] > 0, (table, venue, entry)
            for sink in sinks:
                if not accounted:
                    assert entry["accounted"][sink] == 0, (table, venue, sink, entry)
                assert entry["written"][sink] == expected_written(entry, sink), (table, venue, sink, entry)


def assert_until_met(summary: dict[str, Any]) -> None:
    """The capture stopped because its condition held, not because the time ran out."""
    until = summary.get("until")
    assert until is not None and until["met"], f"stop condition not met: {until}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A Ray end-to-end test that fails is run once more (pytest-rerunfailures; README, Dependencies): a whole
    capture on a small, shared machine meets Ray start-up waits that a loaded machine misses now and then."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=5))


def wait_for(what: str, condition: Any, timeout_s: float = UNTIL_TIMEOUT_S) -> Any:
    """Poll `condition()` until it returns something true (returned); fail naming `what` and its last value.

    A LookupError (no controller yet) counts as not yet."""
    import time

    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except LookupError as exc:  # no controller yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g} s (last: {last!r})")
