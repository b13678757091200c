"""A Ray head of the test's own: its own temp dir and ports, and a teardown that stops only its processes.

`ray.cluster_utils.AutoscalingCluster.start()` and `.shutdown()` run `ray stop --force`, which kills
every Ray on the machine (other engineers' and the test session's). `PrivateHead` runs
`ray start --head --block` in a new session with a private `--temp-dir` and free ports, and stops it
by process id: the `ray start` process and every descendant it has (GCS, raylets, workers, and the
fake nodes the autoscaler launched), plus any process still naming the private temp dir.

Token authentication: every private head has a token of its own, generated into its temp dir
(`RAY_AUTH_TOKEN_PATH`), never read from or written to `~/.ray/auth_token`. `PrivateHead.env()` is the
environment of any process that must talk to that head (RAY_ADDRESS, RAY_AUTH_MODE=token and that token).

`FakeAutoscalingCluster` is an `AutoscalingCluster` whose config is built here (the 2.60 wheel lacks
the `fake_multi_node/example.yaml` the stock class loads) and whose head is a `PrivateHead`. Its
worker nodes are real raylets on this machine, launched and terminated by the Ray autoscaler.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Ray first: where psutil is not installed, importing Ray puts its bundled copy on sys.path
from ray.cluster_utils import AutoscalingCluster  # isort: skip
import psutil  # isort: skip

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_TYPE = "ray.head.default"


#: Ray's default worker ports (`--min-worker-port` .. `--max-worker-port`)
RAY_WORKER_PORTS = (10002, 19999)
#: ports handed out by `free_port` in this process (never twice)
_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port to listen on, free now, never handed out before by this process, and where nothing else is likely
    to take it before `ray start` binds it: above Ray's worker ports and below the kernel's ephemeral range,
    where every outgoing connection of every process takes its local port (a port picked with bind(0) is in
    that range, and a connection of the test session's own Ray could take it in the seconds `ray start` needs).
    Without room below the ephemeral range, bind(0)."""
    low, high = RAY_WORKER_PORTS[1] + 1, _ephemeral_low() - 1
    for _ in range(500 if high - low >= 1000 else 0):
        port = random.randint(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _HANDED_OUT.add(port)
    return port


def write_token(path: Path) -> Path:
    """A new random Ray auth token (what `ray get-auth-token --generate` writes), owner-readable only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secrets.token_hex(32), encoding="utf-8")
    return path


def token_env(token_path: Path) -> dict[str, str]:
    """Token authentication with the token in `token_path` (Ray reads RAY_AUTH_TOKEN before the path: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    env["RAY_AUTH_MODE"] = "token"  # the same mode on the head, its nodes and every client (docs/guide.md)
    env["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    return env


def private_env(address: str | None, token_path: Path) -> dict[str, str]:
    """The environment of a process that must talk to one head only (and no other Ray on the machine)."""
    env = {k: v for k, v in token_env(token_path).items() if not k.startswith("RAY_ADDRESS")}
    env["PYTHONUNBUFFERED"] = "1"
    if address is not None:
        env["RAY_ADDRESS"] = address
    return env


def processes_naming(temp_dir: str) -> list[psutil.Process]:
    """Every process (but this one) whose command line names `temp_dir` (a private Ray's processes)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.pid != os.getpid() and any(temp_dir in part for part in process.info["cmdline"] or ()):
                found.append(process)
    return found


def stop_processes_naming(temp_dir: str) -> list[psutil.Process]:
    """SIGTERM, then SIGKILL after 10 s, every process naming `temp_dir`; those that were still running."""
    processes = processes_naming(temp_dir)
    terminate(processes)
    return processes


def terminate(processes: list[psutil.Process]) -> None:
    """SIGTERM every one of `processes`, then SIGKILL those still running 10 s later."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


class PrivateHead:
    """`ray start --head --block` of our own; `address` is its GCS address (host:port)."""

    def __init__(
        self, num_cpus: float, autoscaling_config: dict[str, Any] | None = None, *, dashboard: bool = False
    ) -> None:
        self.num_cpus = num_cpus
        self.autoscaling_config = autoscaling_config
        #: with `dashboard`: the dashboard's (and job server's) URL, bound to 127.0.0.1 on a free port
        self.dashboard_url: str | None = None
        self.dashboard_port = free_port() if dashboard else None
        if self.dashboard_port is not None:
            self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        # short: Ray puts unix sockets under it (108-byte path limit)
        self.temp_dir = tempfile.mkdtemp(prefix="xtr-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(self.temp_dir) / "head.log"
        self.token_path = write_token(Path(self.temp_dir) / "auth_token")

    def env(self) -> dict[str, str]:
        """The environment of a process that joins this head (its address and its token)."""
        return private_env(self.address, self.token_path)

    def start(self, timeout_s: float = 120.0, attempts: int = 3) -> None:
        """Start the head; retried with fresh ports when `ray start` exited: Ray's own 30 s raylet-registration
        wait ran out, which happens on a heavily loaded machine (`The current node timed out during startup`),
        or one of its ports was taken meanwhile. The last attempt's error carries its log."""
        for attempt in range(1, attempts + 1):
            try:
                self._start(timeout_s)
                return
            except RuntimeError:
                if attempt == attempts:
                    raise
                self._kill()
                self.port = free_port()
                self.address = f"127.0.0.1:{self.port}"

    def _start(self, timeout_s: float) -> None:
        command = [
            RAY,
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            f"--num-cpus={self.num_cpus:g}",
            *(
                ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}"]
                if self.dashboard_port is not None
                else ["--include-dashboard=false"]
            ),
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
        ]
        env = private_env(None, self.token_path)
        if self.autoscaling_config is not None:
            config = {**self.autoscaling_config}
            # the fake nodes join this head's GCS (the provider defaults to port 6379)
            config["provider"] = {**config["provider"], "gcs_address": self.address}
            path = Path(self.temp_dir) / "autoscaling.json"
            path.write_text(json.dumps(config), encoding="utf-8")
            command.append(f"--autoscaling-config={path}")
            env.update({"AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1"})
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=self.temp_dir
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited {self.process.returncode}: {self.log.read_text()[-3000:]}")
            if b"Ray runtime started" in self.log.read_bytes():
                return
            time.sleep(0.2)
        log = self.log.read_text(errors="replace")[-3000:]  # before stop() removes the temp dir it is in
        self.stop()
        raise TimeoutError(f"ray start not up after {timeout_s:g} s: {log}")

    def processes(self) -> list[psutil.Process]:
        """Every process of this head: the `ray start` process, its descendants, anything naming our temp dir."""
        found: dict[int, psutil.Process] = {}
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.process.pid)
                found[root.pid] = root
                found.update((p.pid, p) for p in root.children(recursive=True))
        found.update((p.pid, p) for p in processes_naming(self.temp_dir))
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self) -> None:
        """Stop this head's processes only (SIGTERM, then SIGKILL after 10 s), and remove its temp dir."""
        self._kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _kill(self) -> None:
        terminate(self.processes())
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)


def started_head(num_cpus: float, *, dashboard: bool = False, attempts: int = 5) -> PrivateHead:
    """A started `PrivateHead`, tried `attempts` times: on a loaded machine `ray start` can give up waiting
    for its raylet (Ray's own fixed 30 s: "The current node timed out during startup")."""
    for attempt in range(1, attempts + 1):
        head = PrivateHead(num_cpus, dashboard=dashboard)
        try:
            head.start(timeout_s=180)
            return head
        except (RuntimeError, TimeoutError):
            head.stop()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


class FakeAutoscalingCluster(AutoscalingCluster):
    """`AutoscalingCluster` on the fake multinode provider, started as a `PrivateHead` (no `ray stop --force`)."""

    def __init__(self, head_resources: dict[str, Any], worker_node_types: dict[str, Any], **config: Any) -> None:
        super().__init__(head_resources, worker_node_types, **config)
        self.head: PrivateHead | None = None

    def _generate_config(
        self,
        head_resources: dict[str, Any],
        worker_node_types: dict[str, Any],
        autoscaler_v2: bool = False,
        **config: Any,
    ) -> dict[str, Any]:
        if autoscaler_v2:
            raise NotImplementedError("autoscaler v2 is not set up here")
        types = {
            **worker_node_types,
            HEAD_TYPE: {"resources": dict(head_resources), "node_config": {}, "max_workers": 0},
        }
        base: dict[str, Any] = {
            "cluster_name": "xtrader-fake",
            "max_workers": sum(t.get("max_workers", 0) for t in worker_node_types.values()),
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": 0.1,
            "provider": {
                "type": "fake_multinode",
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
            },
            "available_node_types": types,
            "head_node_type": HEAD_TYPE,
            "auth": {"ssh_user": "ubuntu"},
            "docker": {},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }
        base.update(config)
        return base

    @property
    def address(self) -> str:
        assert self.head is not None, "not started"
        return self.head.address

    def env(self) -> dict[str, str]:
        assert self.head is not None, "not started"
        return self.head.env()

    def start(self, _system_config: Any = None, override_env: Any = None) -> None:
        if _system_config is not None or override_env:
            raise NotImplementedError("not supported by the private head")
        self.head = PrivateHead(self._head_resources.get("CPU", 0), self._config)
        self.head.start()

    def shutdown(self) -> None:
        if self.head is not None:
            self.head.stop()
