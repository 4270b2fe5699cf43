"""Real clusters on this machine for the cluster tests, started and stopped by the tests themselves.

- ``SparkStandalone``: a Spark standalone master and one worker on 127.0.0.1, run from what ships
  inside the pyspark package (``bin/spark-class``; the package has no ``sbin/start-master.sh``).
- ``RayCluster``: a head node and a second node from ``ray start --block``, each with its own
  temp dir and ports, and a fresh auth token passed by environment (never ``~/.ray/auth_token``).

Every process starts in its own process group, under coreutils ``timeout`` so that it ends by
itself even if pytest is killed. Stopping one signals it, then whatever is left of its group and
of its process tree, identified by pid and start time: exactly what the tests started, never
``ray stop`` (which stops every Ray on the machine, including the pytest process's own local
Ray) and never a kill by name. A cluster that cannot start raises ``ClusterStartError`` with the
tail of its log, so the test fails loudly instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import procfs

START_TIMEOUT_S = 120.0  # the machine is shared and has 2 CPUs: JVMs and raylets start slowly
STOP_GRACE_S = 30.0
TREE_GRACE_S = 5.0
JOB_TIMEOUT_S = 300.0
DAEMON_LIFETIME_S = 1200.0  # a cluster outliving a killed pytest ends by itself after this
LOG_TAIL_CHARS = 3000


class ClusterStartError(RuntimeError):
    """A cluster process died or did not report ready in time; the message holds its log tail."""


def free_port() -> int:
    """A TCP port free on every interface right now (Ray binds the machine's address, not loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def venv_bin(name: str) -> str:
    """A console script of this interpreter's environment (``ray``, ``batch-predict``)."""
    return str(Path(sys.executable).with_name(name))


@dataclass
class ManagedProcess:
    """One started process (the leader of its own process group), its log file, and how to stop
    it with everything it started."""

    name: str
    popen: subprocess.Popen
    log: Path
    started: int = 0  # start time in clock ticks: with the pid, names this process uniquely

    def log_tail(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-LOG_TAIL_CHARS:]

    def wait_for(self, marker: str, timeout: float = START_TIMEOUT_S) -> None:
        """Waits until ``marker`` appears in the log; raises ClusterStartError if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log.read_text(errors="replace"):
                return
            if self.popen.poll() is not None:
                raise ClusterStartError(
                    f"{self.name} exited with {self.popen.returncode} before {marker!r}; log "
                    f"{self.log}:\n{self.log_tail()}"
                )
            time.sleep(0.5)
        raise ClusterStartError(
            f"{self.name} did not log {marker!r} within {timeout:.0f} s; log {self.log}:\n{self.log_tail()}"
        )

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to the process (``timeout`` passes it to its group) and a wait for it to exit;
        then SIGTERM to what is left of its group and of its process tree (Ray's workers start
        their own sessions), a short wait, and SIGKILL to anything still there."""
        ours = _spawned_by(
            self.popen.pid, self.started
        )  # before the leader dies and its children are reparented
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        ours |= _spawned_by(self.popen.pid, self.started)
        _signal_all(ours, signal.SIGTERM)
        deadline = time.monotonic() + TREE_GRACE_S
        while any(_alive(*proc) for proc in ours) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_all(ours | {(self.popen.pid, self.started)}, signal.SIGKILL)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass


def start_process(
    name: str,
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    lifetime: float | None = None,
) -> ManagedProcess:
    """Starts ``argv`` in a new process group (session), stdout and stderr into ``log``. With
    ``lifetime``, coreutils ``timeout`` ends it after that many seconds even if this process is
    killed before it can stop it (a daemon must never outlive a test session for long)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if lifetime is not None:
        argv = ["timeout", "--kill-after=15", str(int(lifetime)), *argv]
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    info = procfs.stat(popen.pid)
    return ManagedProcess(name, popen, log, started=info[2] if info else 0)


def run_process(
    name: str,
    argv: list[str],
    log: Path,
    env: dict[str, str],
    timeout: float = JOB_TIMEOUT_S,
    cwd: Path | None = None,
) -> tuple[int, str]:
    """Runs ``argv`` to the end like ``start_process``; returns its exit code and output. On
    timeout stops its whole process tree and raises AssertionError with the output's tail."""
    proc = start_process(name, argv, log, env, cwd)
    try:
        code = proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.stop()
        raise AssertionError(f"{name} ran past {timeout:.0f} s; log {log}:\n{proc.log_tail()}") from None
    finally:
        proc.stop()  # also whatever it left behind in its group (a driver JVM, say)
    return code, log.read_text(errors="replace")


def _spawned_by(leader: int, started: int) -> set[tuple[int, int]]:
    """Live processes that ``leader`` started, as (pid, start time): its descendants and the
    members of its process group that started after it. The start time keeps a reused pid safe."""
    table = procfs.process_table()
    group = {
        (pid, st)
        for pid, (_, pgrp, st) in table.items()
        if pgrp == leader and st >= started and pid != leader
    }
    tree: set[tuple[int, int]] = set()
    parents = {leader}
    while parents:
        children = {
            (pid, st) for pid, (ppid, _, st) in table.items() if ppid in parents and st >= started
        } - tree
        tree |= children
        parents = {pid for pid, _ in children}
    return group | tree


def _alive(pid: int, started: int) -> bool:
    info = procfs.stat(pid)
    if info is None or info[2] != started:
        return False
    try:  # a zombie has exited; only its parent's wait remains
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _signal_all(processes: set[tuple[int, int]], sig: int) -> None:
    for pid, started in processes:
        if _alive(pid, started):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


@dataclass
class _Cluster:
    """Processes started in order and stopped in reverse; a context manager that always stops them."""

    root: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log}):\n{p.log_tail()}" for p in self.processes)


@dataclass
class SparkStandalone(_Cluster):
    """A Spark standalone master and one worker on 127.0.0.1; ``url`` is the ``spark://`` master."""

    cores: int = 1
    memory: str = "2g"
    url: str = ""

    def start(self) -> None:
        import pyspark

        spark_home = Path(pyspark.__file__).parent
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home),
            "SPARK_DAEMON_MEMORY": "512m",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_DIRS": str(self.root / "local"),
        }
        spark_class = str(spark_home / "bin" / "spark-class")
        port = free_port()
        self.url = f"spark://127.0.0.1:{port}"
        master = start_process(
            "spark master",
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(free_port()),
            ],
            self.root / "master.log",
            env,
            lifetime=DAEMON_LIFETIME_S,
        )
        self.processes.append(master)
        master.wait_for("I have been elected leader")
        worker = start_process(
            "spark worker",
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                self.url,
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--webui-port",
                str(free_port()),
                "--cores",
                str(self.cores),
                "--memory",
                self.memory,
                "--work-dir",
                str(self.root / "work"),
            ],
            self.root / "worker.log",
            env,
            lifetime=DAEMON_LIFETIME_S,
        )
        self.processes.append(worker)
        worker.wait_for("Successfully registered with master")


@dataclass
class RayCluster(_Cluster):
    """A Ray head and one more node (``ray start --block``) with token authentication.

    ``address`` is the head's GCS address (the machine's own IP, not 127.0.0.1); ``env`` is what a
    driver needs to join: ``RAY_AUTH_MODE=token`` and the cluster's ``RAY_AUTH_TOKEN``.
    """

    cpus_per_node: int = 1
    gpus_on_second_node: int = 0  # logical GPUs: Ray schedules on them; torch still finds no CUDA
    object_store_bytes: int = 150 * 1024 * 1024
    address: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        token = secrets.token_hex(32)
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        env.update(self.env)
        env.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        # No 30 s drain on SIGTERM: Ray Data's detached actors keep a node busy until the timeout.
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        head = start_process(
            "ray head",
            [*self._start_argv("head"), "--head", f"--port={free_port()}", "--include-dashboard=false"],
            self.root / "head.log",
            env,
            lifetime=DAEMON_LIFETIME_S,
        )
        self.processes.append(head)
        head.wait_for("Ray runtime started")
        address_file = self.root / "head" / "ray_current_cluster"  # written by `ray start` in its --temp-dir
        self.address = address_file.read_text().strip()
        node = start_process(
            "ray node",
            [*self._start_argv("node"), f"--address={self.address}"],
            self.root / "node.log",
            env,
            lifetime=DAEMON_LIFETIME_S,
        )
        self.processes.append(node)
        node.wait_for("Ray runtime started")
        # A driver with the token must see both nodes alive before a test uses the cluster.
        code, out = run_process(
            "ray probe",
            [sys.executable, "-c", _RAY_PROBE, self.address, "2"],
            self.root / "probe.log",
            env,
            timeout=START_TIMEOUT_S,
        )
        if code != 0:
            raise ClusterStartError(
                f"the Ray cluster at {self.address} did not show 2 live nodes:\n{out[-LOG_TAIL_CHARS:]}"
            )

    def node_dirs(self) -> list[Path]:
        """Each node's current session folder (logs, runtime_resources), head first."""
        return [self.root / name / "session_latest" for name in ("head", "node")]

    def _start_argv(self, name: str) -> list[str]:
        # Ray's fixed default ports (dashboard agent 52365, client server 10001, ...) would clash
        # with other Ray instances on a shared machine: every port is picked free here.
        return [
            venv_bin("ray"),
            "start",
            "--block",
            "--disable-usage-stats",
            f"--temp-dir={self.root / name}",
            f"--num-cpus={self.cpus_per_node}",
            f"--num-gpus={self.gpus_on_second_node if name == 'node' else 0}",
            f"--object-store-memory={self.object_store_bytes}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]


_RAY_PROBE = """
import logging, sys, time
import ray
ray.init(address=sys.argv[1], logging_level=logging.WARNING, log_to_driver=False)
deadline = time.monotonic() + 60
while sum(n["Alive"] for n in ray.nodes()) < int(sys.argv[2]):
    if time.monotonic() > deadline:
        sys.exit(f"alive nodes: {sum(n['Alive'] for n in ray.nodes())}")
    time.sleep(0.5)
"""


def short_temp_dir(prefix: str) -> Path:
    """A short folder under /tmp: Ray's unix socket paths inside it must stay under 107 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
