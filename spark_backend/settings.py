"""The ``[spark]`` section of a job file, read by the Spark executor alone (no pyspark import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from common.errors import JobError


@dataclass(frozen=True)
class SparkSettings:
    """Spark options.

    Attributes:
        master: ``local[*]``, ``local[2,4]`` (2 threads, 4 attempts per task) or ``spark://host:7077``.
            A non-local master gets this harness's own packages shipped with the job (``addPyFile``);
            its nodes need Java, the same Python at ``PYSPARK_PYTHON`` and the model libraries.
        conf: extra Spark configuration, passed as is.
        udf: ``arrow`` (mapInArrow: keeps NaN and null apart) or ``pandas`` (mapInPandas, the
            legacy pandas UDF; pandas cannot tell NaN from null, so Spark writes NaN outputs as null).
        app_name: the Spark application name.
        task_gpus: GPUs per task (``spark.task.resource.gpu.amount``); 0 runs the model on CPU.
        remote: ``sc://host:port`` of a running Spark Connect server (``python -m
            spark_backend.connect_server``) to run the job on instead of starting a driver JVM;
            ``master`` is then the server's business.
    """

    master: str = "local[*]"
    conf: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    udf: Literal["arrow", "pandas"] = "arrow"
    app_name: str = "batch-predict"
    task_gpus: float = 0.0
    remote: str = ""

    def check(self, where: str) -> None:
        if self.remote and not self.remote.startswith("sc://"):
            raise JobError(
                f'{where}: field "remote" must be a Spark Connect URL sc://host:port, got {self.remote!r}'
            )
        if self.remote and self.master != "local[*]":
            raise JobError(
                f'{where}: give "master" or "remote", not both (the Connect server has its own master)'
            )
        if self.task_gpus < 0:
            raise JobError(f'{where}: field "task_gpus" must be >= 0, got {self.task_gpus!r}')
