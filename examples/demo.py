"""``make demo``: runs every built example on Spark and on Ray and prints their summary lines.

Both engines start once and are shared by all the jobs, as a production driver would.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import replace

from common.run.runner import run_job
from common.spec.job import load_job
from examples.build import EXAMPLES_DIR, example_names


def main() -> int:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.simplefilter("ignore")
    for name in example_names():
        job = load_job(EXAMPLES_DIR / name / "job.toml")
        for backend in ("spark", "ray"):
            out = job.output_path.with_name(f"{job.output_path.name}-{backend}")
            result = run_job(replace(job, output_path=out, overwrite=True), backend)
            print(f"[{name}] {result.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
