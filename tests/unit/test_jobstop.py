"""The driver's warning about `ray job stop`'s SIGKILL (xtrader/driver/jobstop.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from xtrader.driver.jobstop import JOB_CONFIG_VAR, MIN_STOP_WAIT_S, STOP_WAIT_VAR, stop_wait_warning

JOB = {JOB_CONFIG_VAR: "{}"}


def test_no_warning_outside_a_ray_job() -> None:
    assert stop_wait_warning({}) is None
    assert stop_wait_warning({STOP_WAIT_VAR: "1"}) is None


def test_a_ray_job_with_rays_default_wait_is_warned() -> None:
    warning = stop_wait_warning(JOB)
    assert warning is not None and "3 s" in warning and STOP_WAIT_VAR in warning


def test_a_short_wait_is_warned_a_long_one_not() -> None:
    assert stop_wait_warning({**JOB, STOP_WAIT_VAR: str(MIN_STOP_WAIT_S - 1)}) is not None
    assert stop_wait_warning({**JOB, STOP_WAIT_VAR: str(MIN_STOP_WAIT_S)}) is None


def test_a_value_ray_cannot_read_is_named() -> None:
    warning = stop_wait_warning({**JOB, STOP_WAIT_VAR: "2m"})
    assert warning is not None and "'2m'" in warning


def test_the_example_runtime_env_gives_a_job_long_enough() -> None:
    env = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "runtime_env.yaml").read_text())
    assert stop_wait_warning({**JOB, **env["env_vars"]}) is None
