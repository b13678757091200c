"""Security of a running capture: its listeners, its logs, and a Ray cluster with token authentication.

- Every socket a capture opens to listen (the simulator's websocket/REST ports and stats port, /metrics)
  binds loopback: found by listing the process's listening sockets while a capture of the simulator runs.
- No credential (a QuestDB password) and no Ray token appears in anything the capture prints or in the
  logs of its Ray session.
- A head started with token authentication (a token the test generated, never ~/.ray) refuses a client
  without the token (`ray job list`, `ray.init`, the dashboard's HTTP API) while a capture runs on it with
  the token.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from jobs.demo import demo_capture
from jobs.run import run
from tests.cluster.private_ray import RAY, PrivateHead, started_head

ROOT = Path(__file__).resolve().parents[2]
#: simulator listeners: a plain and a TLS port for each of the four venues, and its stats port; /metrics
LISTENERS_AT_LEAST = 4 * 2 + 1 + 1


def listening(pid: int | None = None) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` (default: this one) listens on."""
    process = psutil.Process(pid)
    return {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def exposed(sockets: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """The sockets that are not bound to a loopback address (0.0.0.0, ::, or an interface's address)."""
    return {(address, port) for address, port in sockets if not is_loopback(address)}


def test_the_check_sees_a_socket_bound_to_every_interface() -> None:
    """The check below can fail: a socket bound to 0.0.0.0 (or ::) is reported."""
    before = listening()
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert exposed(listening() - before) == {("0.0.0.0", port)}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert exposed(listening() - before) == set()


@pytest.mark.usefixtures("ray_session")
def test_every_listener_of_a_capture_binds_loopback(tmp_path: Path) -> None:
    # Ray's own servers in this process (the driver's core worker) are there before the capture starts:
    # Ray binds them to every interface and protects them with token authentication (docs/guide.md)
    baseline = listening()
    capture = demo_capture(str(tmp_path / "data"), symbols=1, rate=20.0)
    capture = capture.model_copy(
        update={  # a busy machine starts actors slowly
            "cluster": capture.cluster.model_copy(update={"placement_timeout_s": 600.0}),
            "pipeline": capture.pipeline.model_copy(update={"connector_cpus": 0.25}),
        }
    )
    assert capture.metrics.enabled and capture.simulator is not None and capture.simulator.enabled
    stop = threading.Event()
    result: dict[str, Any] = {}

    def capture_thread() -> None:
        try:
            result["summary"] = run(capture, 300.0, stop_event=stop)
        except BaseException as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=capture_thread, daemon=True)
    seen: set[tuple[str, int]] = set()
    thread.start()
    try:
        deadline = time.monotonic() + 240
        while thread.is_alive() and time.monotonic() < deadline:
            seen |= listening() - baseline
            if len(seen) >= LISTENERS_AT_LEAST:
                break  # the simulator and /metrics are up
            time.sleep(0.2)
        for _ in range(10):  # and a little longer, for anything opened later
            seen |= listening() - baseline
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(300)
    assert "error" not in result, result.get("error")
    assert len(seen) >= LISTENERS_AT_LEAST, seen
    assert exposed(seen) == set(), f"listening on every interface or a public address: {exposed(seen)}"


# -- logs ------------------------------------------------------------------------------------------------------


def test_no_credential_and_no_ray_token_in_the_logs(tmp_path: Path) -> None:
    password = "pw-" + secrets.token_hex(16)
    token = secrets.token_hex(32)
    temp = Path(tempfile.mkdtemp(prefix="xts-", dir="/tmp"))  # short: Ray's unix sockets live under it
    try:
        config = {
            "name": "secrets",
            "simulator": {"enabled": True, "symbols": 1, "rate": 20},
            "streams": [{"venue": "binance", "tables": ["trades", "l2", "bbo"], "symbols": ["BTCUSDT"]}],
            "sinks": {
                "parquet": {"root": str(tmp_path / "data")},
                "questdb": {
                    "enabled": True,  # nobody listens there: batches are retried, then spilled
                    "conf": f"http::addr=127.0.0.1:1;username=xtrader;password={password};protocol_version=1;",
                    "spill_dir": str(tmp_path / "spill"),
                },
            },
            "metrics": {"port": 0},
        }
        path = tmp_path / "capture.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_TMPDIR=str(temp), PYTHONUNBUFFERED="1")
        done = subprocess.run(
            [sys.executable, "-m", "jobs.capture", "--config", str(path), "--duration", "15", "--verbose"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "xtrader-summary: " in done.stdout
        logs = sorted(p for p in temp.rglob("*") if p.is_file() and "logs" in p.parts)
        assert logs, f"no Ray session logs under {temp}"
        for name, text in [("stdout", done.stdout), ("stderr", done.stderr)] + [
            (str(p), p.read_text(errors="replace")) for p in logs
        ]:
            assert password not in text, f"the QuestDB password is in {name}"
            assert token not in text, f"the Ray token is in {name}"
    finally:
        shutil.rmtree(temp, ignore_errors=True)


# -- token authentication -----------------------------------------------------------------------------------------


@pytest.fixture
def head() -> Iterator[PrivateHead]:
    head = started_head(8, dashboard=True)
    try:
        yield head
    finally:
        head.stop()


def without_token(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}


def with_wrong_token(env: dict[str, str]) -> dict[str, str]:
    return {**without_token(env), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def job_list(head: PrivateHead, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert head.dashboard_url is not None
    return subprocess.run(
        [RAY, "job", "list", "--address", head.dashboard_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


RAY_INIT = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
    raise SystemExit(3)
print("nodes alive:", sum(node["Alive"] for node in ray.nodes()))
"""


def ray_init(head: PrivateHead, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RAY_INIT, head.address],
        env={k: v for k, v in env.items() if k != "RAY_ADDRESS"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def refused(done: subprocess.CompletedProcess[str]) -> bool:
    text = done.stdout + done.stderr
    return done.returncode != 0 and any(
        word in text for word in ("AuthenticationError", "InvalidAuthToken", "Unauthorized", "401")
    )


def test_a_client_without_the_token_is_refused_while_a_capture_runs(head: PrivateHead, tmp_path: Path) -> None:
    config = {
        "name": "token-auth",
        "simulator": {"enabled": True, "symbols": 1, "rate": 20},
        "streams": [{"venue": "binance", "tables": ["trades"], "symbols": ["BTCUSDT"]}],
        "sinks": {"parquet": {"root": str(tmp_path / "data")}},
        "metrics": {"port": 0},
    }
    path = tmp_path / "capture.yaml"
    path.write_text(yaml.safe_dump(config))
    stderr = tmp_path / "capture.err"
    with stderr.open("w") as err:
        capture = subprocess.Popen(
            [sys.executable, "-m", "jobs.capture", "--config", str(path), "--min-rows", "1", "--duration", "300"],
            cwd=ROOT,
            env=head.env(),  # RAY_ADDRESS and the token: the capture joins the head
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "metrics on" not in stderr.read_text() and capture.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)  # the driver prints it once it joined the cluster (with the token)
        assert capture.poll() is None, stderr.read_text()[-3000:]
        assert "metrics on" in stderr.read_text(), stderr.read_text()[-3000:]
        env = head.env()
        assert head.dashboard_url is not None
        # the job API (dashboard HTTP) and the GCS (ray.init), without, with a wrong, with the token
        for bad in (without_token(env), with_wrong_token(env)):
            assert refused(job_list(head, bad))
            denied = ray_init(head, bad)
            assert denied.returncode == 3 and refused(denied), denied.stdout + denied.stderr[-2000:]
        allowed = job_list(head, env)
        assert allowed.returncode == 0, allowed.stderr[-2000:]
        joined = ray_init(head, env)
        assert joined.returncode == 0 and "nodes alive: 1" in joined.stdout, joined.stdout + joined.stderr[-2000:]
        token = head.token_path.read_text().strip()
        assert http_status(head.dashboard_url + "/api/version", None) == 401
        assert http_status(head.dashboard_url + "/api/version", secrets.token_hex(32)) in (401, 403)
        assert http_status(head.dashboard_url + "/api/version", token) == 200
        out, _ = capture.communicate(timeout=360)
        assert capture.returncode == 0, stderr.read_text()[-3000:]
        assert "xtrader-summary: " in out
    finally:
        if capture.poll() is None:
            capture.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                capture.wait(60)
        if capture.poll() is None:
            capture.kill()
