"""The one rule for what a job and its bundle may declare together, checked at load.

Every backend runs the same declaration, so what one engine would do differently (Spark applies
transforms as columns of the input row, the Arrow side on a copy) must never be expressible:

- a transform writes neither the key nor a passthrough column (passthrough means the input's
  value, on every backend);
- output names are unique across the key, the passthrough columns and the model's outputs;
- artefact paths stay inside the bundle folder (``common.spec.bundle`` checks that one).

Declared output types are checked against what the model returns at the driver's preflight
(``common.model.predictor.outputs_to_arrays``).
"""

from __future__ import annotations

from collections import Counter

from common.errors import JobError


def check_declaration(job, bundle) -> None:
    """Raises JobError naming the job file, the field and the column that breaks the rule."""
    where = f"{job.path}"
    twice = [name for name, n in Counter(job.passthrough).items() if n > 1]
    if twice:
        raise JobError(f'{where}: [output] field "passthrough" lists "{twice[0]}" twice')
    copied = set(job.passthrough_columns)
    for transform in bundle.transforms:
        for column in transform.output_columns():
            if column in copied:
                what = "the key column" if column in job.key else "the passthrough column"
                raise JobError(
                    f'{where}: transform {transform.op} of bundle {bundle.path} writes {what} "{column}", '
                    "which the output copies from the input; give the transform an output of its own"
                )
    clash = [name for name in bundle.outputs if name in copied]
    if clash:
        raise JobError(
            f'{where}: output column "{clash[0]}" is both a model output of bundle {bundle.path} '
            'and a key or [output] "passthrough" column; output names must be unique'
        )
