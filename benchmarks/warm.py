"""Warm engines on this machine for ``benchmarks.phases``: a Ray head and a Spark Connect server.

Both are started the documented way (README, "Warm engines"): ``ray start --head`` (jobs say
``[ray] address = "auto"``) and ``python -m spark_backend.connect_server`` (jobs say
``[spark] remote = "sc://localhost:PORT"``). Each runs in its own session with its own ports and
temp dir, so it never meets another Ray or Spark on a shared machine, and is stopped, with
everything it started, when the ``with`` block ends.
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
from pathlib import Path

START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


class _Server:
    """One server process in its own session, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_for(self, marker: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while marker not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.process.args[:3]} did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of its session is left
        except ProcessLookupError:
            pass
        self.process.wait()


class WarmRay:
    """A one-node Ray cluster (``ray start --head --block``); ``env`` is what a job's process needs."""

    def __init__(self, cpus: int | None = None):
        self.cpus = cpus or os.cpu_count() or 1
        self.root = Path(tempfile.mkdtemp(prefix="bpw-", dir="/tmp"))  # Ray's socket paths must stay short
        self.env: dict[str, str] = {}

    def __enter__(self) -> WarmRay:
        token = secrets.token_hex(32)
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        env.update(self.env, RAY_ENABLE_UV_RUN_RUNTIME_ENV="0", RAY_USAGE_STATS_ENABLED="0")
        ports = [
            f"--{name}={free_port()}"
            for name in (
                "port",
                "node-manager-port",
                "object-manager-port",
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "metrics-export-port",
                "runtime-env-agent-port",
            )
        ]
        ray = str(Path(sys.executable).with_name("ray"))
        self.server = _Server(
            [
                ray,
                "start",
                "--head",
                "--block",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={self.root}",
                f"--num-cpus={self.cpus}",
                *ports,
            ],
            env,
            self.root / "head.log",
        )
        try:
            self.server.wait_for("Ray runtime started")
        except BaseException:
            self.__exit__()
            raise
        self.env["RAY_ADDRESS"] = (self.root / "ray_current_cluster").read_text().strip()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class WarmSpark:
    """A Spark Connect server (``python -m spark_backend.connect_server``); ``url`` for ``remote``."""

    def __init__(self, master: str = "local[*]"):
        self.master = master
        self.root = Path(tempfile.mkdtemp(prefix="bpw-spark-"))
        self.url = ""

    def __enter__(self) -> WarmSpark:
        port = free_port()
        self.server = _Server(
            [
                sys.executable,
                "-m",
                "spark_backend.connect_server",
                "--port",
                str(port),
                "--master",
                self.master,
            ],
            dict(os.environ),
            self.root / "server.log",
        )
        try:
            self.server.wait_for("ready: ")
        except BaseException:
            self.__exit__()
            raise
        self.url = f"sc://localhost:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)
