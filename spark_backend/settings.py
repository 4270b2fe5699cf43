"""The ``[spark]`` section of a job file, read by the Spark executor alone (no pyspark import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from common.errors import JobError

UDF_KINDS = ("arrow", "pandas")


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
    conf: Mapping[str, str] = field(default_factory=dict, metadata={"types": (dict,)})
    udf: str = "arrow"
    app_name: str = "batch-predict"
    task_gpus: float = field(default=0.0, metadata={"types": (float,)})

    def check(self, where: str) -> None:
        if self.udf not in UDF_KINDS:
            raise JobError(f'{where}: udf "{self.udf}" is not one of {", ".join(UDF_KINDS)}')
        bad = [k for k, v in self.conf.items() if not isinstance(v, (str, int, float, bool))]
        if bad:
            raise JobError(f'{where}: conf "{bad[0]}" must be a string or number')
        if self.task_gpus < 0:
            raise JobError(f"{where}: task_gpus must be >= 0")
