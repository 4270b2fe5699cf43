"""A Spark Connect server from the pip package, for jobs with ``[spark] remote = "sc://host:port"``.

    python -m spark_backend.connect_server [--port 15002] [--master "local[*]"] [--conf KEY=VALUE ...]

Runs Spark's ``SparkConnectServer`` in the foreground (what ``sbin/start-connect-server.sh --wait``
runs, without its daemon wrapper, so that Ctrl-C or SIGTERM stops it and its Python workers), with
this interpreter for the Python workers, quiet logging and the venv's class-data-sharing archive.
It prints ``ready: sc://localhost:PORT`` once it accepts connections. Jobs pointed at it skip the
JVM's start and reuse its warm Python workers, whose loaded models (cached per worker by bundle)
also outlive a job: for a team that runs many small parity checks a day on one machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002


def server_argv(port: int, master: str, conf: dict[str, str]) -> list[str]:
    """``spark-submit`` for the Connect server with our Python, JVM options and the given conf."""
    import pyspark

    from spark_backend import engine

    spark_home = Path(pyspark.__file__).parent
    # A long-running server's JIT pays off: C2 stays on; the CDS archive and quiet logging apply.
    java_options = " ".join(o for o in engine.driver_java_options().split() if o not in engine.JIT_OPTIONS)
    settings = {
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.driver.extraJavaOptions": java_options,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **conf,
    }
    argv = [
        str(spark_home / "bin" / "spark-submit"),
        "--class",
        SERVER_CLASS,
        "--master",
        master,
        "--name",
        "batch-predict Spark Connect server",
    ]
    for key, value in settings.items():
        argv += ["--conf", f"{key}={value}"]
    return argv + ["spark-internal"]


def server_env() -> dict[str, str]:
    import pyspark

    env = dict(os.environ)
    env.setdefault("SPARK_HOME", str(Path(pyspark.__file__).parent))
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def wait_until_listening(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited with {process.returncode}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the Spark Connect server did not listen on port {port} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the server to listen"
    )
    args = parser.parse_args(argv)
    conf = dict(item.split("=", 1) for item in args.conf)
    server = subprocess.Popen(server_argv(args.port, args.master, conf), env=server_env())
    try:
        wait_until_listening(args.port, server, args.timeout)
        print(f"ready: sc://localhost:{args.port}", flush=True)
        return server.wait()
    except (KeyboardInterrupt, RuntimeError) as exc:
        if isinstance(exc, RuntimeError):
            print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
