"""sql transforms through the CLI: a refused expression and an ANSI runtime error are each one
line, exit code 2, the same on Spark and Ray, with nothing published; ANSI off gives Spark 3's
answers, equal on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import assert_failed_cleanly, make_job, read_output, run_cli

# x2_z is a model feature; the expression divides by zero at id 450, past the preflight's rows
FEATURE = 'features = ["x1_filled", "x2_z", "cat_idx"]'
STANDARD_SCALE = """[[transforms]]
op = "standard_scale"
column = "x2"
output = "x2_z"
mean = 1.0
std = 2.0
"""
BACKENDS = [pytest.param("spark", marks=pytest.mark.spark), pytest.param("ray", marks=pytest.mark.ray)]


def sql_job(root: Path, expr: str, ansi: bool | None = None, on_error: str = "fail") -> Path:
    """``make_job`` with x2_z computed by ``expr`` (an sql transform) instead of standard_scale."""
    job = make_job(root, rows=500)
    bundle = root / "bundle" / "bundle.toml"
    text = bundle.read_text()
    assert STANDARD_SCALE in text
    sql = f'[[transforms]]\nop = "sql"\noutput = "x2_z"\nexpr = "{expr}"\n'
    text = text.replace(STANDARD_SCALE, sql)
    if ansi is not None:
        text = f"sql_ansi = {str(ansi).lower()}\n" + text
    bundle.write_text(text)
    job.write_text(job.read_text().replace('key = "id"\n', f'key = "id"\non_error = "{on_error}"\n', 1))
    return job


@pytest.mark.parametrize(
    ("expr", "needles"),
    [
        ("soundex(cat)", ["unsupported function soundex", "supported:", "regexp_extract"]),
        ("x2 + rand()", ["rand is non-deterministic", "disagree by design"]),
        ("CAST(x2 AS BIGINT) * 1.5", ["DECIMAL", "CAST(... AS DOUBLE)", 'sql transform "x2_z"']),
        ("cat + 1", ["needs a number, got string", "CAST it"]),
        ("s rlike '(?i)x'", ["inline flags", "RE2"]),
    ],
    ids=["unsupported", "non_deterministic", "decimal", "string_arithmetic", "regex"],
)
@pytest.mark.parametrize("backend", ["spark", "ray"])
def test_a_refused_expression_is_one_line_before_any_engine(tmp_path, capsys, expr, needles, backend):
    job = sql_job(tmp_path, expr)
    code, err = run_cli(capsys, "run", str(job), "--backend", backend)
    assert_failed_cleanly(code, err, tmp_path / "out", "bundle.toml", *needles)


@pytest.mark.parametrize("on_error", ["dead_letter"])  # the stricter case: even then the job fails
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_ansi_error_fails_the_job_with_the_same_line_on_every_backend(
    tmp_path, capsys, engines, backend, on_error
):
    expr = "x2 / CAST(id <> 450 AS INT)"
    job = sql_job(tmp_path, expr, on_error=on_error)
    code, err = run_cli(capsys, "run", str(job), "--backend", backend)
    expected = f'sql transform "x2_z" failed under ANSI mode: [DIVIDE_BY_ZERO] in `{expr}`'
    assert_failed_cleanly(code, err, tmp_path / "out", expected)
    assert err.endswith(
        expected + " (sql_ansi = false in bundle.toml gives Spark 3 semantics: null or wrapped "
        "values instead)"
    ), err


@pytest.mark.spark
@pytest.mark.ray
def test_ansi_off_gives_spark_3_answers_equal_on_spark_ray_and_reference(tmp_path, capsys, engines):
    job = sql_job(tmp_path, "coalesce(x2 / CAST(id <> 450 AS INT), -1.0D) * 0.5D", ansi=False)
    outputs = {}
    for backend in ("reference", "spark", "ray"):
        code, err = run_cli(
            capsys, "run", str(job), "--backend", backend, "--output", str(tmp_path / backend)
        )
        assert code == 0, err
        outputs[backend] = read_output(tmp_path / backend)
    assert outputs["spark"].equals(outputs["reference"]) and outputs["ray"].equals(outputs["reference"])
