"""Under `ray job submit`: how long `ray job stop` lets the driver drain before it SIGKILLs it.

`ray job stop` has the job's supervisor (an actor on the head node) send SIGTERM to the driver and all its
children, wait `RAY_JOB_STOP_WAIT_TIME_S` seconds (3 by default) and then SIGKILL whatever still runs. The
supervisor reads that variable from its own environment: the head node's (`ray start`'s) plus the job's
runtime_env `env_vars`, the same environment it starts the driver with, so the driver sees the same value.
Three seconds is less than a capture's drain (stop the connectors, drain arbiters and books, close every
sink) takes on a loaded cluster: the driver warns at start when the wait is that short.
"""

from __future__ import annotations

from collections.abc import Mapping

#: set by Ray's job supervisor in the environment of a submitted job's driver
JOB_CONFIG_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"
STOP_WAIT_VAR = "RAY_JOB_STOP_WAIT_TIME_S"
#: Ray's default (`JobSupervisor.DEFAULT_RAY_JOB_STOP_WAIT_TIME_S`)
RAY_DEFAULT_STOP_WAIT_S = 3
#: below this, a drain and close of every sink may not fit: warn
MIN_STOP_WAIT_S = 60


def stop_wait_warning(environ: Mapping[str, str]) -> str | None:
    """A warning when this process is a Ray job's driver that `ray job stop` would SIGKILL sooner than
    MIN_STOP_WAIT_S after its SIGTERM; None otherwise (not a Ray job, or a long enough wait)."""
    if JOB_CONFIG_VAR not in environ:
        return None
    raw = environ.get(STOP_WAIT_VAR, "").strip()
    try:
        wait = int(raw) if raw else RAY_DEFAULT_STOP_WAIT_S
    except ValueError:
        return f"{STOP_WAIT_VAR}={raw!r} is not a whole number of seconds (Ray's job supervisor reads it with int())"
    if wait >= MIN_STOP_WAIT_S:
        return None
    return (
        f"`ray job stop` SIGKILLs this driver {wait} s after its SIGTERM ({STOP_WAIT_VAR}"
        f"{'=' + raw if raw else ' unset: Ray default'}), likely before every sink is closed; set {STOP_WAIT_VAR} "
        f"(e.g. 300) in the job's runtime_env env_vars (examples/runtime_env.yaml) or on the head node"
    )
