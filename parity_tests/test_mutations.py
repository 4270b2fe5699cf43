"""Mutation tests: a deliberately wrong transform on one side must fail parity, naming the
column and the side.

The wrong implementations are injected into the Spark side's expression builders in the driver
(where Spark's plan is built), so they really run inside Spark; Ray and the reference stay right.
Each is a classic migration bug: half-even rounding instead of HALF_UP, a different hash, and
null treated as 0.
"""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

import spark_backend.transforms as spark_transforms
from common.parity.runner import run_parity
from parity_tests.conftest import write_job
from parity_tests.hard_inputs import hard_table, write_layout, write_probe_bundle

PARITY = """
[parity.columns.out_x_log1p]
ulps = 1
"""


def half_even_round(original):
    def numeric(op, x, p):
        return F.bround(x, p["scale"]) if op == "round" else original(op, x, p)

    return "_numeric", numeric


def other_hash(original):
    def columns(df, t):
        if t.op == "hash_bucket":
            col = F.col(f"`{t.column}`")
            return {t.output: F.pmod(F.xxhash64(col), F.lit(t.params["buckets"])).cast("long")}
        return original(df, t)

    return "_columns", columns


def null_as_zero(original):
    def numeric(op, x, p):
        return original(op, F.coalesce(x, F.lit(0.0)), p)

    return "_numeric", numeric


MUTATIONS = {
    "round_half_even": (half_even_round, "_numeric", ["out_x_round"]),
    "different_hash": (other_hash, "_columns", ["out_s_hash", "out_n_hash"]),
    "null_as_zero": (null_as_zero, "_numeric", ["out_x_log1p", "out_x_std", "out_x_round", "out_x_bucket"]),
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
    make, attribute, columns = MUTATIONS[name]
    patched_name, patched = make(getattr(spark_transforms, attribute))
    monkeypatch.setattr(spark_transforms, patched_name, patched)
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
