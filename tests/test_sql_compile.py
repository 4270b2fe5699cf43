"""The SQL compiler's refusals, types and runtime behaviour that need no Spark: each refusal is one
line naming the problem (and, for a function, the supported ones)."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pytest
import torch

from common.errors import BatchPredictError, BundleError
from common.sql import SqlCompileError, SqlRuntimeError, compile_sql, referenced_columns, supported

SCHEMA = {
    "i": pa.int32(),
    "l": pa.int64(),
    "d": pa.float64(),
    "f": pa.float32(),
    "s": pa.string(),
    "b": pa.bool_(),
    "day": pa.date32(),
    "ts": pa.timestamp("us", tz="UTC"),
    "my col": pa.float64(),
    "dec": pa.decimal128(10, 2),
}


def _refusal(expr: str, ansi: bool = True) -> str:
    with pytest.raises(SqlCompileError) as info:
        compile_sql(expr, SCHEMA, ansi)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, BundleError)
    return message


def test_an_unsupported_function_is_named_with_the_supported_list():
    message = _refusal("soundex(s)")
    assert "unsupported function soundex" in message
    assert "regexp_extract" in message and "date_trunc" in message


@pytest.mark.parametrize(
    "call",
    [
        "rand()",
        "uuid()",
        "now()",
        "current_timestamp()",
        "current_date",
        "monotonically_increasing_id()",
        "randn(3)",
    ],
)
def test_non_deterministic_functions_are_refused_with_the_reason(call):
    message = _refusal(f"d + 0 + cast({call} is null as int)" if "(" in call else call)
    assert "non-deterministic" in message and "disagree by design" in message


@pytest.mark.parametrize(
    "expr", ["i * 1.5", "l + 0.25", "round(1.5)", "CAST(d AS DECIMAL(10, 2))", "1.5BD + d"]
)
def test_decimal_results_are_refused_with_the_cast_hint(expr):
    assert "CAST(... AS DOUBLE)" in _refusal(expr)


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"(a)\\1", "backreference"),
        ("(?=a)b", "lookahead"),
        ("(?i)abc", "inline flags"),
        (r"\\bword", "word boundary"),
        ("a*+", "possessive"),
        (r"\\p{L}", "Unicode classes"),
        ("[a-z&&[^b]]", "class intersection"),
        ("[[:alpha:]]", "[ inside a character class"),
        ("(?<name>a)", "named group"),
    ],
)
def test_regex_constructs_outside_the_common_subset_are_named(pattern, construct):
    message = _refusal(f"s rlike '{pattern}'")
    assert construct in message and "RE2" in message


def test_dollar_is_refused_where_java_and_re2_differ():
    assert "$" in _refusal("regexp_replace(s, 'a$', 'b')")
    compile_sql("s rlike 'a$'", SCHEMA, True)  # at the end of an rlike pattern it is translated


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("nope + 1", 'unknown column "nope"'),
        ("dec * 2", 'column "dec" is decimal128(10, 2)'),
        ("s + 1", "needs a number, got string; CAST it"),
        ("s = i", "mixes string, int"),
        ("d div 2", "div needs int or bigint"),
        ("split_part(s, ',', 0)", "must not be 0"),
        ("substring(s, i, 2)", "must be a literal"),
        ("regexp_replace(s, 'a', '$1')", "refers to group 1"),
        ("date_trunc('fortnight', ts)", "unknown date_trunc unit"),
        ("from_utc_timestamp(ts, 'Mars/Olympus')", "unknown time zone"),
        ("SELECT 1", "not a statement"),
        ("i +", "cannot parse"),
        ("CAST(NULL AS INT) IS NULL AND NULL", None),
    ],
)
def test_other_refusals_name_the_problem(expr, problem):
    if problem is None:
        compile_sql(expr, SCHEMA, True)
        return
    assert problem in _refusal(expr)


@pytest.mark.parametrize(
    ("expr", "ansi", "arrow"),
    [
        ("i + i", True, pa.int32()),
        ("i + l", True, pa.int64()),
        ("i / i", True, pa.float64()),
        ("i div i", True, pa.int64()),
        ("floor(d)", True, pa.int64()),
        ("f + i", False, pa.float32()),
        ("f + i", True, pa.float64()),
        ("lower(s)", True, pa.string()),
        ("s rlike 'a'", True, pa.bool_()),
        ("to_date(ts)", True, pa.date32()),
        ("date_trunc('DAY', ts)", True, pa.timestamp("us", tz="UTC")),
        ("1.5 * d", True, pa.float64()),
        ("0.1D", True, pa.float64()),
        ("`my col` * 2", True, pa.float64()),
        ("CASE WHEN b THEN i ELSE l END", True, pa.int64()),
        ("2147483648", True, pa.int64()),
    ],
)
def test_result_types_follow_spark(expr, ansi, arrow):
    assert compile_sql(expr, SCHEMA, ansi).arrow_type == arrow


def test_referenced_columns_include_backquoted_names_in_first_use_order():
    assert referenced_columns("`my col` + d * coalesce(d, `my col`, i)") == ["my col", "d", "i"]


def _run(expr: str, columns: dict, ansi: bool, device: str = "cpu") -> list:
    schema = {n: a.type for n, a in columns.items()}
    rows = len(next(iter(columns.values())))
    return compile_sql(expr, schema, ansi).evaluate(columns, rows, device).to_pylist()


def test_an_ansi_error_names_the_error_class_and_is_a_batch_predict_error():
    columns = {"a": pa.array([1, 2], pa.int32()), "b": pa.array([1, 0], pa.int32())}
    with pytest.raises(SqlRuntimeError) as info:
        _run("a / b", columns, ansi=True)
    assert info.value.error_class == "DIVIDE_BY_ZERO"
    assert isinstance(info.value, BatchPredictError)
    assert _run("a / b", columns, ansi=False) == [1.0, None]


def test_an_error_behind_a_false_and_or_an_untaken_branch_is_not_raised():
    columns = {"a": pa.array([1, 2], pa.int32()), "b": pa.array([1, 0], pa.int32())}
    assert _run("b <> 0 AND a / b > 0", columns, ansi=True) == [True, False]
    assert _run("coalesce(CAST(a AS DOUBLE), a / b)", columns, ansi=True) == [1.0, 2.0]
    assert _run("a IN (1, 2, a / b)", columns, ansi=True) == [True, True]


def test_int64_arithmetic_is_exact():
    big = 2**53 + 1  # not a float64
    columns = {"l": pa.array([big, -big], pa.int64())}
    assert _run("l + 2", columns, ansi=True) == [big + 2, -big + 2]
    assert _run("l * 3", columns, ansi=True) == [3 * big, -3 * big]


def test_date_and_time_columns_keep_their_types():
    columns = {"day": pa.array([dt.date(2024, 2, 29), None], pa.date32())}
    assert _run("date_add(day, 1)", columns, ansi=True) == [dt.date(2024, 3, 1), None]


def test_the_numeric_part_runs_on_the_requested_device():
    from common.sql.evaluate import evaluate  # noqa: F401  (registers the kernels)

    columns = {"d": pa.array([1.0, 4.0]), "s": pa.array(["a", "b"])}
    compiled = compile_sql("sqrt(d) + length(s)", {n: a.type for n, a in columns.items()}, True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _, result = compiled.evaluate_vec(columns, 2, device)
    assert result.data.device.type == device
    assert compiled.evaluate(columns, 2, device).to_pylist() == [2.0, 3.0]


def test_supported_lists_operators_and_functions():
    text = supported()
    assert "CASE" in text and "xxhash64" in text and "from_utc_timestamp" in text


def test_the_sql_op_in_a_bundle_reads_its_columns_from_the_expression():
    from common.spec.transforms import parse_transforms, required_input_columns, split_host_stage

    raw = [
        {"op": "sql", "output": "ratio", "expr": "CASE WHEN `n items` > 0 THEN amount / `n items` END"},
        {"op": "log1p", "column": "ratio", "output": "ratio_log"},
        {"op": "sql", "output": "label", "expr": "lower(trim(merchant))"},
    ]
    transforms = parse_transforms(raw, "bundle.toml")
    assert transforms[0].input_columns() == ("n items", "amount")
    assert transforms[0].params == {"expr": raw[0]["expr"], "ansi": True}
    assert required_input_columns(transforms, ["ratio_log", "label"]) == ["n items", "amount", "merchant"]
    host, rest = split_host_stage(transforms)
    assert all(t.op != "sql" for t in host)  # sql's numbers run on the model's device


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"op": "sql", "output": "x"}, 'missing field "expr"'),
        ({"op": "sql", "expr": "a + 1"}, 'missing field "output"'),
        ({"op": "sql", "output": "x", "expr": "a + 1", "column": "a"}, 'unknown field "column"'),
        ({"op": "sql", "output": "x", "expr": "uuid()"}, "non-deterministic"),
        ({"op": "sql", "output": "x", "expr": "soundex(a)"}, "unsupported function soundex"),
    ],
)
def test_sql_op_fields_are_checked_when_the_bundle_loads(entry, message):
    from common.spec.transforms import parse_transforms

    with pytest.raises(BundleError, match=re.escape(message)):
        parse_transforms([entry], "bundle.toml")


def test_sql_ansi_is_a_bundle_field(tmp_path):
    from common.spec.bundle import parse_bundle

    raw = {
        "kind": "python",
        "entrypoint": "m:H",
        "features": ["x"],
        "outputs": {"y": "float64"},
        "sql_ansi": False,
        "transforms": [{"op": "sql", "output": "x", "expr": "a / b"}],
    }
    bundle = parse_bundle(raw, tmp_path, "bundle.toml")
    assert bundle.sql_ansi is False and bundle.transforms[0].params["ansi"] is False
    with pytest.raises(BundleError, match="sql_ansi"):
        parse_bundle({**raw, "sql_ansi": "yes"}, tmp_path, "bundle.toml")
