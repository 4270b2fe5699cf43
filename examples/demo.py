"""``make demo``: every built example through fleet parity (Spark, Ray and the reference; for an
example imported from a Spark ML pipeline also that pipeline, ``legacy``, which the others are then
judged against), their summary lines, then one table of parity verdicts and the fleet report's path.

Both engines start once and are shared by all the jobs, as a production driver would. Each passing
example gets a parity certificate beside its job file, so ``--backend auto`` then picks Ray for it.
"""

from __future__ import annotations

import os
import sys
import warnings

from common.rollout.fleet import run_fleet
from examples.build import EXAMPLES_DIR, example_names

REPORT_DIR = EXAMPLES_DIR / "parity-report"


def main() -> int:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.simplefilter("ignore")
    jobs = [EXAMPLES_DIR / name / "job.toml" for name in example_names()]

    def show(row) -> None:
        for line in row.summaries or [f"error: {row.error}"]:
            print(f"[{row.job}] {line}", flush=True)

    fleet = run_fleet(jobs, REPORT_DIR, progress=sys.stderr.isatty(), on_job=show)
    print()
    print("\n".join(fleet.summary_lines()))
    return fleet.exit_code


if __name__ == "__main__":
    sys.exit(main())
