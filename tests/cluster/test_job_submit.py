"""`ray job submit` for real: a head of the test's own (`ray start --head`, token authentication on with a
token the test generated), the capture uploaded with `--working-dir .` and the runtime_env of
examples/runtime_env.yaml, the job SUCCEEDED, its Parquet checked against the simulator, and
`ray job logs` carrying the periodic progress lines.

Nothing here reads or writes ~/.ray: the head and every `ray job` command get the token through
RAY_AUTH_TOKEN_PATH (tests/cluster/private_ray.py).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import assert_written, wait_for
from tests.cluster.private_ray import RAY, PrivateHead, started_head
from tests.cluster.test_demo import rows_on_disk

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_PREFIX = "xtrader-summary: "  # jobs/capture.py
PROGRESS_PREFIX = "xtrader-metrics: "  # xtrader/progress.py
#: a busy 2-core machine: the head, the upload, the job's own actors and a 20 s capture
JOB_TIMEOUT_S = 600.0
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@pytest.fixture(scope="module")
def head() -> Iterator[PrivateHead]:
    """One private head for the module's jobs (started once: a head takes tens of seconds on a busy machine)."""
    head = started_head(8, dashboard=True)
    try:
        wait_for_job_server(head)
        yield head
    finally:
        head.stop()


def ray_job(head: PrivateHead, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    """`ray job ARGS` against the head's job server, with the head's token (or the given environment)."""
    assert head.dashboard_url is not None
    return subprocess.run(
        [RAY, "job", args[0], "--address", head.dashboard_url, *args[1:]],
        cwd=ROOT,
        env=head.env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_job_server(head: PrivateHead, timeout_s: float = 120.0) -> None:
    """The dashboard (which serves the job API) starts after `ray start` returns."""
    deadline = time.monotonic() + timeout_s
    done = None
    while time.monotonic() < deadline:
        done = ray_job(head, "list")
        if done.returncode == 0:
            return
        time.sleep(1)
    raise TimeoutError(f"job server not up after {timeout_s:g} s: {done.stderr[-2000:] if done else ''}")


def job_status(head: PrivateHead, job_id: str) -> str:
    """The job's status from the job API (GET /api/jobs/ID, the token as a bearer token)."""
    assert head.dashboard_url is not None
    token = head.token_path.read_text(encoding="utf-8").strip()
    request = urllib.request.Request(
        f"{head.dashboard_url}/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(json.loads(response.read())["status"])


def wait_for_job(head: PrivateHead, job_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        status = job_status(head, job_id)
        if status in TERMINAL:
            return status
        time.sleep(2)
    ray_job(head, "stop", job_id)
    return status


def runtime_env(tmp_path: Path, **env_vars: str) -> Path:
    """examples/runtime_env.yaml plus this test's environment variables (where the Parquet goes)."""
    env = yaml.safe_load((ROOT / "examples" / "runtime_env.yaml").read_text())
    env["env_vars"] = {**env.get("env_vars", {}), **env_vars}
    path = tmp_path / "runtime_env.yaml"
    path.write_text(yaml.safe_dump(env))
    return path


def progress_of(logs: str) -> list[dict[str, Any]]:
    """The job's `xtrader-metrics:` progress lines, in order."""
    return [
        json.loads(line.removeprefix(PROGRESS_PREFIX)) for line in logs.splitlines() if line.startswith(PROGRESS_PREFIX)
    ]


def supervisor_log(head: PrivateHead, job_id: str) -> str:
    """What the job's supervisor logged (on the head: how it stopped the job)."""
    path = Path(head.temp_dir) / "session_latest" / "logs" / "jobs" / f"supervisor-{job_id}.log"
    return path.read_text(errors="replace") if path.exists() else f"(no {path})"


def summary_of(logs: str) -> dict[str, Any]:
    lines = [line for line in logs.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, logs[-3000:]
    summary: dict[str, Any] = json.loads(lines[0].removeprefix(SUMMARY_PREFIX))
    return summary


def test_a_capture_submitted_with_ray_job_submit_writes_what_the_simulator_sent(
    head: PrivateHead, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    job_id = f"xtrader-test-{uuid.uuid4().hex[:8]}"
    submitted = ray_job(
        head,
        "submit",
        "--submission-id",
        job_id,
        "--no-wait",
        "--working-dir",
        ".",
        "--runtime-env",
        str(
            runtime_env(
                tmp_path,
                XTRADER_PARQUET_ROOT=str(data),
                XTRADER_METRICS_LOG_INTERVAL_S="2",
                XTRADER_PLACEMENT_TIMEOUT_S="600",  # a busy machine starts the actors' processes slowly
            )
        ),
        "--",
        "python",
        "-m",
        "jobs.capture",
        "--config",
        "examples/simulator.yaml",
        "--duration",
        "20",
        # the guide's command: the built C extensions (gitignored) are uploaded with the code
        env={**head.env(), "RAY_RUNTIME_ENV_IGNORE_GITIGNORE": "1"},
        timeout=300,
    )
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-3000:]
    status = wait_for_job(head, job_id, JOB_TIMEOUT_S)
    logs = ray_job(head, "logs", job_id).stdout
    assert status == "SUCCEEDED", logs[-5000:]
    assert "frames: the compiled parsers (Binance, OKX, Deribit)" in logs, logs[:3000]  # the uploaded tree carried it

    summary = summary_of(logs)
    assert set(summary["tables"]) == {"trades", "l2", "bbo"}
    assert_written(summary)  # written == sent + rest for every table and venue
    assert set(summary["tables"]["trades"]) == {"binance", "binance_futures", "okx", "deribit"}
    assert summary["books"]["checked"] > 0 and summary["books"]["matched"] == summary["books"]["checked"]
    for table, venues in summary["tables"].items():
        on_disk = rows_on_disk(data, table)  # the job wrote where its runtime_env said
        assert on_disk == {venue: entry["written"]["parquet"] for venue, entry in venues.items()}, table

    progress = progress_of(logs)
    assert len(progress) >= 2, logs[-3000:]  # periodic: every 2 s of a 20 s run
    # rows count as written once durable (in a closed file), so a short run's lines may still show 0 there
    assert progress[-1]["messages"] > 0 and "parquet" in progress[-1]["written"]
    assert [p["elapsed_s"] for p in progress] == sorted(p["elapsed_s"] for p in progress)


def test_ray_job_stop_drains_flushes_and_closes_everything_before_the_driver_exits(
    head: PrivateHead, tmp_path: Path
) -> None:
    """Issue 10: `ray job stop` of a capture submitted without a duration. Ray's job supervisor sends SIGTERM
    (RAY_JOB_STOP_SIGNAL) to the entrypoint and all its children, waits RAY_JOB_STOP_WAIT_TIME_S (Ray's default:
    3 s) and then SIGKILLs them. The driver must drain every actor, close every sink and print its summary in
    that time: nothing lost (written == sent + rest; those rows in readable Parquet files)."""
    from tests.cluster.test_pipeline import assert_complete

    data = tmp_path / "data"
    job_id = f"xtrader-stop-{uuid.uuid4().hex[:8]}"
    env = runtime_env(
        tmp_path,
        XTRADER_PARQUET_ROOT=str(data),
        XTRADER_METRICS_LOG_INTERVAL_S="1",
        XTRADER_PLACEMENT_TIMEOUT_S="600",
    )
    submitted = ray_job(
        head,
        "submit",
        "--submission-id",
        job_id,
        "--no-wait",
        "--working-dir",
        ".",
        "--runtime-env",
        str(env),
        "--",
        "python",
        "-m",
        "jobs.capture",
        "--config",
        "examples/simulator.yaml",
        timeout=300,
    )
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-3000:]
    try:

        def flowing() -> bool:  # rows of the simulator are reaching the sinks
            if job_status(head, job_id) in TERMINAL:
                raise AssertionError(ray_job(head, "logs", job_id).stdout[-5000:])
            progress = progress_of(ray_job(head, "logs", job_id).stdout)
            return bool(progress) and progress[-1]["messages"] >= 500

        wait_for("rows flowing in the submitted capture", flowing, JOB_TIMEOUT_S)
        asked = time.monotonic()
        stopped = ray_job(head, "stop", job_id, timeout=300)
        assert stopped.returncode == 0, stopped.stdout[-2000:] + stopped.stderr[-3000:]
        status = wait_for_job(head, job_id, 300)
        took = time.monotonic() - asked
    finally:
        if job_status(head, job_id) not in TERMINAL:
            ray_job(head, "stop", job_id)
    logs = ray_job(head, "logs", job_id).stdout
    supervisor = supervisor_log(head, job_id)
    how = [line.split(" -- ", 1)[-1].split(" job_id=")[0] for line in supervisor.splitlines() if "SIGTERM" in line]
    print(f"ray job stop: STOPPED after {took:.1f} s; the supervisor: {how}")
    assert status == "STOPPED", logs[-5000:]
    assert SUMMARY_PREFIX in logs, f"the driver was killed before its summary: {logs[-5000:]}"
    # the driver exited by itself (sinks closed, actors and placement groups torn down), not by the SIGKILL
    after_summary = logs[logs.index(SUMMARY_PREFIX) :].split("\n", 1)[-1]
    assert "terminated gracefully" in supervisor, supervisor[-3000:] + after_summary[-3000:]
    summary = summary_of(logs)
    clean = {"unacked_rows": 0, "sinks_not_closed": [], "closes_unconfirmed": 0}
    assert summary["shutdown"] == clean, summary["shutdown"]
    assert_complete(summary, data)  # written == sent + rest, those rows in readable Parquet once, books true
