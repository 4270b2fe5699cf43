"""Mutation tests: a deliberately wrong transform on one side must fail parity, naming the
column and the side.

The wrong implementations replace ops in the Spark side's registry (``SPARK_OPS``) in the driver
(where Spark's plan is built), so they really run inside Spark; Ray and the reference stay right.
Each is a classic migration bug: half-even rounding instead of HALF_UP, a different hash, and
null treated as 0.
"""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

import spark_backend.transforms as spark_transforms
from common.parity.runner import run_parity
from common.spec.transforms import NUMERIC_OPS
from parity_tests.conftest import write_job
from parity_tests.hard_inputs import hard_table, write_layout, write_probe_bundle

PARITY = """
[parity.columns.out_x_log1p]
ulps = 1
"""


def half_even_round(original):
    def columns(t, col, typ):
        return {t.output: F.bround(col.cast("double"), t.params["scale"]).cast("double")}

    return columns


def other_hash(original):
    def columns(t, col, typ):
        return {t.output: F.pmod(F.xxhash64(col), F.lit(t.params["buckets"])).cast("long")}

    return columns


def null_as_zero(original):
    def columns(t, col, typ):
        return original(t, F.coalesce(col, F.lit(0.0)), typ)

    return columns


# name -> (the mutation of an op's Spark columns, the ops it replaces, the columns it must be blamed on)
MUTATIONS = {
    "round_half_even": (half_even_round, ["round"], ["out_x_round"]),
    "different_hash": (other_hash, ["hash_bucket"], ["out_s_hash", "out_n_hash"]),
    "null_as_zero": (null_as_zero, NUMERIC_OPS, ["out_x_log1p", "out_x_std", "out_x_round", "out_x_bucket"]),
}


@pytest.fixture(scope="module")
def probe_job(tmp_path_factory):
    root = tmp_path_factory.mktemp("mutations")
    bundle = write_probe_bundle(root / "bundle", batch_size=64)
    inputs = write_layout(hard_table(), root / "input", "many_files")
    return write_job(root, inputs, bundle, PARITY, passthrough=("id",))


def test_clean_run_passes(probe_job, engines, tmp_path):
    """The control: without a mutation the same three-way parity passes."""
    report, paths, _ = run_parity(probe_job, tmp_path)
    assert report.ok, report.problems()
    assert paths["json"].exists() and paths["html"].exists()


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_caught_and_attributed(name, probe_job, engines, tmp_path, monkeypatch):
    make, ops, columns = MUTATIONS[name]
    for op in ops:
        monkeypatch.setitem(spark_transforms.SPARK_OPS, op, make(spark_transforms.SPARK_OPS[op]))
    report, _, _ = run_parity(probe_job, tmp_path)
    assert not report.ok
    findings = report.reference_findings()
    for column in columns:
        line = next((f for f in findings if f" on {column} " in f or f" on {column}:" in f), None)
        assert line is not None, (column, findings)
        assert line.startswith("spark differs from reference"), line
        assert "ray agrees with reference" in line, line
    # nothing else is blamed: every finding is about spark, on a column the mutation touches
    assert all(f.startswith("spark differs from reference") for f in findings), findings
