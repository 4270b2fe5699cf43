"""Starting and stopping the Spark engine this process uses: a local or cluster driver JVM, or a
Spark Connect server (``start``, ``running``, ``stop``, as ``ray_backend.engine``).

A job's fixed cost on Spark is mostly the driver JVM's start: JIT compilation and class loading
(measured: 22 of the JVM's 29 CPU-seconds for a one-row job). Two JVM options cut it, measured
in paired runs (README, "Benchmarks"): C1 only (``-XX:TieredStopAtLevel=1``) and a class-data-
sharing archive of Spark's classes, built once into the venv (``python -m spark_backend.engine
build-cds``, run by ``make venv``) and used when present. The JVM's own log lines go to a log
file, not to the user's terminal (``-Dlog4j2.configurationFile`` at ERROR, and its stderr), and
``stop()`` ends the JVM and its Python workers before the CLI exits.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from common.run.signals import engine_starting
from spark_backend.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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


# Settings the harness needs whatever the job says: UTC session time (time-zone transforms name
# their zone explicitly) and Arrow for the UDF.
_FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
# What a Spark Connect client may set on its session (the server owns the static settings).
_CONNECT_CONF = {"spark.sql.session.timeZone": "UTC"}


class SparkStartError(RuntimeError):
    """The driver JVM refused to start a session; the message is the JVM's own error text."""


def start(settings: SparkSettings) -> tuple[SparkSession, float]:
    """The active SparkSession, or a new one from the settings; returns it and its start seconds.

    A new local or cluster session starts its driver JVM with this module's options
    (C1-only JIT, the venv's class-data-sharing archive, quiet logging, the JVM's output in a log
    file); ``[spark] remote`` connects to a running Spark Connect server instead.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        master = master_url(active)
        if settings.remote or (master != settings.master and settings.master != SparkSettings.master):
            wanted = f"remote = {settings.remote}" if settings.remote else f"master = {settings.master}"
            warnings.warn(
                f"reusing the running Spark session on {master}; [spark] {wanted} is ignored", stacklevel=2
            )
        for key, value in {**_FIXED_CONF, **settings.conf}.items():
            set_runtime_conf(active, key, str(value))
        return active, 0.0
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    started = time.perf_counter()
    if settings.remote:
        with engine_starting():
            session = SparkSession.builder.remote(settings.remote).getOrCreate()
            own(session)
        for key, value in {**_CONNECT_CONF, **settings.conf}.items():
            set_runtime_conf(session, key, str(value))
        return session, time.perf_counter() - started
    if settings.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no hostname lookup, and no warning about it
    conf = {
        "spark.master": settings.master,
        "spark.app.name": settings.app_name,
        "spark.ui.enabled": "false",
        **_FIXED_CONF,
        **{k: str(v) for k, v in settings.conf.items()},
    }
    conf["spark.driver.extraJavaOptions"] = " ".join(
        filter(None, [driver_java_options(), conf.get("spark.driver.extraJavaOptions", "")])
    )
    if settings.task_gpus:
        conf.setdefault("spark.task.resource.gpu.amount", str(settings.task_gpus))
    # A signal waits until the session is whole and recorded (then stopped like any other), and
    # pyspark's SIGINT handler, which calls into the JVM from inside a call, is replaced by ours.
    with engine_starting():
        _, log = launch_driver_jvm(conf)
        builder = SparkSession.builder
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:
            # py4j's error asks the JVM for its text each time it is printed: read it while the
            # JVM still answers, then stop the JVM and raise the text alone.
            text = str(exc)
            stop_driver_jvm()
            log.close(keep=True)
            raise SparkStartError(text) from None
        except BaseException:
            stop_driver_jvm()
            log.close(keep=True)
            raise
        own(session, log)
    session.sparkContext.setLogLevel("ERROR")
    if settings.master.split("[")[0] != "local":  # executors in their own processes, maybe other machines
        session.sparkContext.addPyFile(str(_harness_archive()))
    return session, time.perf_counter() - started


def master_url(session: SparkSession) -> str:
    """The session's master URL; a Spark Connect session has no SparkContext to ask."""
    try:
        return session.sparkContext.master
    except Exception:  # PySparkNotImplementedError on Spark Connect
        return "connect"


def _harness_archive() -> Path:
    """This harness's own packages (``common``, ``spark_backend``) in one zip for ``addPyFile``,
    so cluster executors run the driver's code: the nodes need the same Python, pyspark and the
    model libraries, not this package. The zip lives until the driver exits (Spark serves it)."""
    import atexit
    import shutil
    import tempfile
    import zipfile

    import common

    folder = Path(tempfile.mkdtemp(prefix="batch-predict-pyfiles-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = folder / "batch_predict_harness.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in (Path(common.__file__).parent, Path(__file__).parent):
            for file in sorted(package.rglob("*.py")):
                zf.write(file, file.relative_to(package.parent))
    return archive


def set_runtime_conf(session: SparkSession, key: str, value: str) -> None:
    """Sets a runtime conf on the session; one that cannot change on a running session warns."""
    if session.conf.get(key, None) == value:
        return
    try:
        session.conf.set(key, value)
    except Exception:  # static configs cannot change on a running session
        warnings.warn(
            f"Spark conf {key} cannot change on the running session; it keeps "
            f"{session.conf.get(key, None)!r}",
            stacklevel=2,
        )


def running() -> bool:
    """Whether a Spark session is active in this process (this process's own or someone else's)."""
    if "pyspark" not in sys.modules:
        return False
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() is not None


def quiet_loggers() -> None:
    """pyspark logs every query error as a JSON line on stderr before raising it; the runner
    reports the error itself, as one line."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL + 1)


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
