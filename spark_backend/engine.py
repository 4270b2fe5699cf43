"""Starting and stopping the Spark engine this process uses: a local or cluster driver JVM, or a
Spark Connect server.

A job's fixed cost on Spark is mostly the driver JVM's start: JIT compilation and class loading
(measured: 22 of the JVM's 29 CPU-seconds for a one-row job). Two JVM options cut it, measured
in paired runs (README, "Benchmarks"): C1 only (``-XX:TieredStopAtLevel=1``) and a class-data-
sharing archive of Spark's classes, built once into the venv (``python -m spark_backend.engine
build-cds``, run by ``make venv``) and used when present. The JVM's own log lines go to a log
file, not to the user's terminal (``-Dlog4j2.configurationFile`` at ERROR, and its stderr), and
``stop()`` ends the JVM and its Python workers before the CLI exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOG4J2_CONFIG = HERE / "log4j2.properties"
JVM_LOG_TAIL_CHARS = 2000
# C1 only: a short job never runs long enough for C2's optimised code to repay compiling it.
JIT_OPTIONS = ("-XX:TieredStopAtLevel=1",)


def cds_archive() -> Path:
    """Where the class-data-sharing archive of this venv's Spark lives (built by ``build_cds``)."""
    import pyspark

    return Path(sys.prefix) / "share" / "batch-predict" / f"spark-{pyspark.__version__}-classes.jsa"


def driver_java_options(cds: Path | None = None) -> str:
    """The driver JVM's options: C1 only, quiet logging, and the CDS archive when it exists."""
    options = [*JIT_OPTIONS, f"-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}"]
    archive = cds_archive() if cds is None else cds
    if archive.is_file():
        # -Xlog:cds=off: a JDK that no longer matches the archive then runs without it, silently.
        options += [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    return " ".join(options)


def build_cds(target: Path | None = None) -> Path:
    """Builds the CDS archive by running a small Spark job in a JVM that dumps the classes it
    loaded when it exits (``-XX:ArchiveClassesAtExit``); once per venv, about a minute."""
    target = target or cds_archive()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.jsa")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="batch-predict-cds-") as folder:
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "spark_backend.engine",
                "_cds-workload",
                folder,
                f"{' '.join(JIT_OPTIONS)} -XX:ArchiveClassesAtExit={partial}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if code.returncode != 0 or not partial.is_file():
            raise RuntimeError(f"building the Spark CDS archive failed: {code.stderr[-JVM_LOG_TAIL_CHARS:]}")
    partial.replace(target)
    return target


def _cds_workload(folder: str, java_options: str) -> None:
    """What the archive learns: a session, a Parquet read, an Arrow UDF and a Parquet write."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import SparkSession

    pq.write_table(
        pa.table({"id": pa.array(range(100), pa.int64()), "x": pa.array([0.5] * 100)}), f"{folder}/in.parquet"
    )
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    df = session.read.parquet(f"{folder}/in.parquet")
    df.mapInArrow(lambda batches: batches, df.schema).write.parquet(f"{folder}/out")
    session.stop()


class JvmLog:
    """The driver JVM's stdout and stderr, in a file rather than on the user's terminal."""

    def __init__(self):
        handle, name = tempfile.mkstemp(prefix="batch-predict-spark-", suffix=".log")
        self.path = Path(name)
        self.file = os.fdopen(handle, "wb")

    def tail(self) -> str:
        try:
            return self.path.read_text(errors="replace")[-JVM_LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def close(self, keep: bool = False) -> None:
        self.file.close()
        if not keep:
            self.path.unlink(missing_ok=True)


def launch_driver_jvm(conf: dict[str, str]):
    """Starts the driver JVM (``spark-submit pyspark-shell``) with ``conf`` and our JVM options,
    its output into a ``JvmLog``; installs it as pyspark's gateway and returns (gateway, log)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    log = JvmLog()
    spark_conf = SparkConf(loadDefaults=False)
    for key, value in conf.items():
        spark_conf.set(key, value)
    try:
        gateway = launch_gateway(spark_conf, popen_kwargs={"stdout": log.file, "stderr": subprocess.STDOUT})
    except Exception as exc:
        log.close(keep=True)
        raise RuntimeError(
            f"the Spark driver JVM did not start: {exc} (its log: {log.path}: {log.tail()[-300:]})"
        ) from None
    SparkContext._gateway = gateway
    SparkContext._jvm = gateway.jvm
    return gateway, log


_owned: dict = {}  # what this process started: {"session": SparkSession, "log": JvmLog}


def own(session, log: JvmLog | None = None) -> None:
    """Records a session (and its JVM's log) that this process started, for ``stop``."""
    _owned.update(session=session, log=log)


def stop() -> None:
    """Stops what this process started: its session, and its driver JVM (with the JVM's Python
    workers) unless the session is a Spark Connect client, whose server keeps running. A session
    someone else started (a notebook's, the test suite's) is left alone."""
    session, log = _owned.pop("session", None), _owned.pop("log", None)
    if session is None:
        return
    try:
        if log is None:  # a Spark Connect client: only this client's session ends
            session.stop()
        else:
            stop_driver_jvm()
    finally:
        if log is not None:
            log.close()


def stop_driver_jvm(timeout: float = 30.0) -> None:
    """Stops the active session, then the JVM this process started, and waits for it to exit
    (the JVM ends its Python workers on the way out)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    try:
        session = SparkSession.getActiveSession()
        if session is not None:
            session.stop()
        if gateway is not None:
            gateway.shutdown()
    except Exception:
        # A signal that cut a py4j call short leaves its connection unusable ("reentrant call"):
        # the JVM still exits below, when its stdin closes, and takes its Python workers along.
        if process is None:
            raise
    finally:
        SparkContext._gateway = SparkContext._jvm = None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()  # the JVM exits when its stdin closes
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _main(argv: list[str]) -> int:
    if argv[:1] == ["build-cds"]:
        started = time.perf_counter()
        path = build_cds()
        print(
            f"built {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s"
        )
        return 0
    if argv[:1] == ["_cds-workload"]:
        _cds_workload(argv[1], argv[2])
        return 0
    print("usage: python -m spark_backend.engine build-cds", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
