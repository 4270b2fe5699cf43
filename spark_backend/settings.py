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
    """

    master: str = "local[*]"
    conf: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    udf: Literal["arrow", "pandas"] = "arrow"
    app_name: str = "batch-predict"
    task_gpus: float = 0.0

    def check(self, where: str) -> None:
        if self.task_gpus < 0:
            raise JobError(f'{where}: field "task_gpus" must be >= 0, got {self.task_gpus!r}')
