"""The Arrow/torch transforms agree with Spark's column expressions (the ground truth) on edge values.

Each table is written to Parquet and read back by Spark, so types travel as in production. Floats
must be bit-identical (NaN == NaN, null == null, and -0.0 != 0.0: Spark keeps the sign of zero
everywhere except in round, and so do we); only log1p may differ, by the 1 ulp measured between
torch's log1p and Java's StrictMath.log1p.
"""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from common.errors import BundleError, InputError
from common.model.features import FeatureBatch, TensorColumn
from common.model.transform_ops import apply_transforms
from common.spec.transforms import parse_transforms, required_input_columns

pytestmark = pytest.mark.spark

LOG1P_MAX_ULPS = 1  # measured: 3% of 300k random inputs differ by 1 ulp, none by more

UTC = dt.UTC
NAN, INF = float("nan"), float("inf")
EDGE_FLOATS = [
    None,
    NAN,
    INF,
    -INF,
    -1.0,
    -1.5,
    -0.0,
    0.0,
    2.5,
    -2.5,
    0.5,
    -0.5,
    1.5,
    0.125,
    2.675,
    0.285,
    1.005,
    9.995,
    -0.001,
    1e300,
    -1e300,
    5e-324,
    1e-20,
    123456789.125,
    0.999999,
    -0.999999,
    1e15 + 0.5,
    4.35,
    -7.45,
]
EDGE_STRINGS = [
    None,
    "",
    "a",
    "ab",
    "abc",
    "abcd",
    "abcde",
    "é",
    "日本語",
    "🙂🙂",
    "A",
    " a",
    "zz",
    "\x00",
    "ÿ",
]


def _edge_numbers() -> pa.Table:
    n = len(EDGE_FLOATS)
    ints = [None, 0, 1, -1, 2, -2, 3, 7, 2**31 - 1, -(2**31), 100]
    longs = [None, 0, 1, -1, 2**53 + 1, -(2**63), 2**63 - 1, 2**32, 5, 3, 9]
    decimals = [
        None,
        "0.1",
        "0.3",
        "-0.3",
        "2.675",
        "0.7",
        "123456789.123456789",
        "1e-10",
        "99999999999999999.99",
        "-1",
        "2.5",
    ]
    return pa.table(
        {
            "x": pa.array(EDGE_FLOATS, pa.float64()),
            "f": pa.array(EDGE_FLOATS, pa.float32()),
            "i": pa.array((ints * 3)[:n], pa.int32()),
            "l": pa.array((longs * 3)[:n], pa.int64()),
            "b": pa.array(([None, True, False] * n)[:n], pa.bool_()),
            "d": pa.array(
                [None if v is None else decimal.Decimal(v) for v in (decimals * 3)[:n]], pa.decimal128(38, 18)
            ),
        }
    )


def _edge_strings() -> pa.Table:
    n = len(EDGE_STRINGS)
    return pa.table(
        {
            "s": pa.array(EDGE_STRINGS),
            "i": pa.array(
                [None, 0, 1, -1, 2**31 - 1, -(2**31), 5, 6, 7, 8, 9, 10, 11, 12, 13][:n], pa.int32()
            ),
            "l": pa.array(
                [None, 0, 1, -1, 2**63 - 1, -(2**63), 2**31, 2**32, -(2**40), 7, 8, 9, 10, 11, 12][:n],
                pa.int64(),
            ),
            "i8": pa.array([None, 0, 1, -1, 127, -128, 5, 6, 7, 8, 9, 10, 11, 12, 13][:n], pa.int8()),
            "u8": pa.array([None, 0, 1, 255, 128, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14][:n], pa.uint8()),
            "u16": pa.array([None, 0, 1, 65535, 32768, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14][:n], pa.uint16()),
            "u32": pa.array(
                [None, 0, 1, 2**32 - 1, 2**31, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14][:n], pa.uint32()
            ),
            "b": pa.array(([None, True, False] * n)[:n], pa.bool_()),
        }
    )


def _edge_instants() -> list[dt.datetime | None]:
    fixed = [
        None,
        dt.datetime(2024, 3, 10, 6, 59, 59, 999999, UTC),
        dt.datetime(2024, 3, 10, 7, tzinfo=UTC),  # New York spring
        dt.datetime(2024, 11, 3, 5, 30, tzinfo=UTC),
        dt.datetime(2024, 11, 3, 6, 30, tzinfo=UTC),  # NY 01:30 twice
        dt.datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC),
        dt.datetime(2024, 3, 31, 1, tzinfo=UTC),  # Berlin spring
        dt.datetime(2024, 10, 27, 0, 30, tzinfo=UTC),
        dt.datetime(2024, 10, 27, 1, 30, tzinfo=UTC),  # Berlin 02:30 twice
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, UTC),
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(1850, 6, 1, 12, 6, 31, tzinfo=UTC),
        dt.datetime(1850, 6, 1, 12, 6, 32, tzinfo=UTC),  # Berlin LMT +0:53:28
        dt.datetime(2100, 7, 1, 3, tzinfo=UTC),  # past 2037: DST rules, not listed transitions
        dt.datetime(2024, 2, 29, 23, 30, tzinfo=UTC),
        dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
        dt.datetime(1, 1, 3, tzinfo=UTC),
        dt.datetime(9999, 12, 29, tzinfo=UTC),
        dt.datetime(1582, 10, 10, tzinfo=UTC),
    ]
    rng = np.random.default_rng(7)
    low, high = (int(dt.datetime(y, 1, 1, tzinfo=UTC).timestamp()) for y in (1890, 2150))
    randoms = [dt.datetime.fromtimestamp(int(s), UTC) for s in rng.integers(low, high, 400)]
    return fixed + randoms


ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Europe/Dublin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/St_Johns",
    "Africa/Casablanca",
    "America/Sao_Paulo",
]


def _edge_timestamps() -> pa.Table:
    aware = pa.array(_edge_instants(), pa.timestamp("us", "UTC"))
    return pa.table(
        {
            "aware": aware,
            "naive": aware.cast(pa.timestamp("us")),
            "new_york": aware.cast(pa.timestamp("us", "America/New_York")),
            "millis": aware.cast(pa.timestamp("ms", "UTC"), safe=False),
        }
    )


# ---- running both sides ---------------------------------------------------------------------------


def run_both(spark, tmp_path, table: pa.Table, raw: list[dict], name: str) -> tuple[pa.Table, FeatureBatch]:
    """(Spark's result table, our FeatureBatch) for the same Parquet file and transforms."""
    from spark_backend.transforms import apply_transforms as spark_apply

    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    transforms = parse_transforms(raw, "bundle.toml")
    outputs = list(dict.fromkeys(c for t in transforms for c in t.output_columns()))
    expected = spark_apply(spark.read.parquet(str(path)), transforms).select(*outputs).toArrow()
    batch = FeatureBatch(pq.read_table(path))
    apply_transforms(batch, transforms)
    return expected, batch


def assert_same(ours: pa.Array, theirs: pa.Array | pa.ChunkedArray, what: str, max_ulps: int = 0) -> None:
    theirs = theirs.combine_chunks() if isinstance(theirs, pa.ChunkedArray) else theirs
    assert ours.type == theirs.type, f"{what}: type {ours.type} vs Spark {theirs.type}"
    assert ours.is_null().to_pylist() == theirs.is_null().to_pylist(), f"{what}: nulls differ"
    if pa.types.is_floating(ours.type):
        a = ours.fill_null(0.0).to_numpy(zero_copy_only=False)
        b = theirs.fill_null(0.0).to_numpy(zero_copy_only=False)
        a_bits, b_bits = a.view(np.int64), b.view(np.int64)
        nan = np.isnan(a) | np.isnan(b)
        same = (a_bits == b_bits) | (np.isnan(a) & np.isnan(b))  # bit-exact: 0.0 and -0.0 differ
        # Floats of one sign are ordered like their bit patterns, so the difference counts ulps.
        close = ~nan & (np.signbit(a) == np.signbit(b)) & (np.abs(a_bits - b_bits) <= max_ulps)
        bad = np.flatnonzero(~(same | close))
    else:
        bad = np.flatnonzero(
            np.asarray(ours.to_pylist(), dtype=object) != np.asarray(theirs.to_pylist(), dtype=object)
        )
    assert not bad.size, (
        f"{what}: {bad.size} rows differ, e.g. row {bad[0]}: ours {ours[int(bad[0])]} Spark "
        f"{theirs[int(bad[0])]}"
    )


# ---- numeric ops ----------------------------------------------------------------------------------

NUMERIC = [
    {"op": "impute", "column": "x", "output": "impute_x", "value": 7.5},
    {"op": "impute", "column": "i", "output": "impute_i", "value": -1},
    {"op": "impute", "column": "d", "output": "impute_d", "value": 0},
    {"op": "log1p", "column": "x", "output": "log1p_x"},
    {"op": "log1p", "column": "f", "output": "log1p_f"},
    {"op": "log1p", "column": "l", "output": "log1p_l"},
    {"op": "standard_scale", "column": "x", "output": "std_x", "mean": 1.5, "std": 0.3},
    {"op": "standard_scale", "column": "l", "output": "std_l", "mean": -2, "std": 7},
    {"op": "standard_scale", "column": "b", "output": "std_b", "mean": 0.5, "std": 0.5},
    {"op": "min_max_scale", "column": "x", "output": "minmax_x", "min": -2.0, "max": 3.3},
    {"op": "min_max_scale", "column": "f", "output": "minmax_f", "min": 0.1, "max": 0.7},
    {"op": "clip", "column": "x", "output": "clip_x", "lower": -1.0, "upper": 1.0},
    {"op": "clip", "column": "x", "output": "clip_zero", "lower": 0.0, "upper": 2.0},
    {"op": "clip", "column": "x", "output": "clip_negzero", "lower": -3.0, "upper": -0.0},
    {"op": "clip", "column": "i", "output": "clip_i", "lower": -5, "upper": 5},
    {"op": "round", "column": "x", "output": "round_x2", "scale": 2},
    {"op": "round", "column": "x", "output": "round_x0", "scale": 0},
    {"op": "round", "column": "x", "output": "round_x1", "scale": 1},
    {"op": "round", "column": "x", "output": "round_xm2", "scale": -2},
    {"op": "round", "column": "f", "output": "round_f2", "scale": 2},
    {"op": "round", "column": "d", "output": "round_d2", "scale": 2},
    {"op": "round", "column": "l", "output": "round_lm3", "scale": -3},
    {"op": "bucketize", "column": "x", "output": "bucket_x", "boundaries": [-1, -0.0, 0.5, 2.5, 100]},
    {"op": "bucketize", "column": "i", "output": "bucket_i", "boundaries": [0, 3]},
    {"op": "bucketize", "column": "d", "output": "bucket_d", "boundaries": [0.3]},
    # chained in place: impute, then scale the imputed column
    {"op": "impute", "column": "x", "output": "chain", "value": 1.0},
    {"op": "log1p", "column": "chain"},
    {"op": "round", "column": "chain", "scale": 3},
]


@pytest.fixture(scope="module")
def numeric_results(spark, tmp_path_factory):
    return run_both(spark, tmp_path_factory.mktemp("numeric"), _edge_numbers(), NUMERIC, "numeric")


@pytest.mark.parametrize("output", list(dict.fromkeys(t.get("output", t["column"]) for t in NUMERIC)))
def test_numeric_op_matches_spark(numeric_results, output):
    expected, batch = numeric_results
    max_ulps = LOG1P_MAX_ULPS if "log1p" in output or output == "chain" else 0
    assert_same(batch.arrow(output), expected.column(output), output, max_ulps)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_numeric_ops_on_cuda_match_spark(numeric_results, tmp_path):
    """The same ops on the GPU: divisions by 0-d tensors stay true divisions there."""
    expected, _ = numeric_results
    batch = FeatureBatch(_edge_numbers(), "cuda")
    apply_transforms(batch, parse_transforms(NUMERIC, "bundle.toml"))
    for output in dict.fromkeys(t.get("output", t["column"]) for t in NUMERIC):
        assert batch.tensor(output).values.is_cuda
        max_ulps = LOG1P_MAX_ULPS if "log1p" in output or output == "chain" else 0
        assert_same(batch.arrow(output), expected.column(output), f"{output} on cuda", max_ulps)


def test_numeric_results_stay_tensors_on_the_device(numeric_results):
    _, batch = numeric_results
    column = batch.tensor("round_x2")
    assert isinstance(column, TensorColumn) and column.values.dtype == torch.float64
    assert batch.tensor("bucket_x").arrow_type == pa.int64()


def test_known_spark_values(numeric_results):
    """The surprising Spark answers, pinned so that a Spark upgrade that changes them is noticed."""
    expected, _ = numeric_results
    row = {repr(v): i for i, v in enumerate(EDGE_FLOATS)}  # repr tells -0.0 from 0.0

    def get(column: str, value: float | None):
        return expected.column(column)[row[repr(value)]].as_py()

    assert (
        get("round_x2", 2.675) == 2.68 and get("round_x2", 0.285) == 0.29 and get("round_x2", 1.005) == 1.01
    )
    assert get("round_x0", 2.5) == 3.0 and get("round_x0", -2.5) == -3.0 and get("round_x0", -0.5) == -1.0
    assert np.signbit(get("round_x2", -0.001)) == False  # noqa: E712 - BigDecimal has no -0.0
    assert np.isnan(get("round_x2", NAN)) and get("round_x2", INF) == INF
    assert get("log1p_x", -1.0) is None and get("log1p_x", -INF) is None and get("log1p_x", INF) == INF
    assert np.signbit(get("log1p_x", -0.0)) and np.isnan(get("log1p_x", NAN))
    assert get("clip_x", NAN) == 1.0 and get("clip_x", None) is None
    assert np.signbit(get("clip_zero", -0.0))  # greatest(-0.0, 0.0) keeps its first argument
    assert get("bucket_x", NAN) == 5 and get("bucket_x", -0.0) == 2 and get("bucket_x", None) is None
    assert get("impute_x", NAN) == 7.5 and get("impute_x", None) == 7.5


def test_round_matches_spark_on_random_values(spark, tmp_path):
    """HALF_UP on the shortest decimal text. Kept below 1e15 after scaling: beyond ~15 significant
    digits Java 17's Double.toString (unlike Java 19+) can print a spurious 17th digit."""
    rng = np.random.default_rng(3)
    n = 20000
    scales = [-2, 0, 1, 2, 3, 6]
    columns = {}
    for s in scales:
        ties = rng.integers(-(10**9), 10**9, n) / 10.0 ** (s + 1)  # many exact .5 ties at this scale
        spread = rng.standard_normal(n) * 10.0 ** rng.integers(-12, 15 - max(s, 0), n)
        columns[f"x{s}"] = np.concatenate([ties, spread])
    raw = [{"op": "round", "column": f"x{s}", "output": f"r{s}", "scale": s} for s in scales]
    expected, batch = run_both(spark, tmp_path, pa.table(columns), raw, "round")
    for s in scales:
        assert_same(batch.arrow(f"r{s}"), expected.column(f"r{s}"), f"round scale {s}")


def test_log1p_within_measured_ulps(spark, tmp_path):
    rng = np.random.default_rng(4)
    values = np.concatenate(
        [rng.uniform(-1, 1, 20000), np.exp(rng.uniform(-40, 40, 20000)), rng.uniform(-1e-9, 1e-9, 5000)]
    )
    raw = [{"op": "log1p", "column": "x", "output": "y"}]
    expected, batch = run_both(spark, tmp_path, pa.table({"x": values}), raw, "log1p")
    assert_same(batch.arrow("y"), expected.column("y"), "log1p", LOG1P_MAX_ULPS)


# ---- categorical ops ------------------------------------------------------------------------------

VOCABULARY = ["a", "", "é", "日本語", "🙂🙂", "abc"]
CATEGORICAL = [
    {"op": "string_index", "column": "s", "output": "index_s", "vocabulary": VOCABULARY},
    {"op": "string_index", "column": "i", "output": "index_i", "vocabulary": [7, -1, 2**31 - 1]},
    {"op": "string_index", "column": "l", "output": "index_l", "vocabulary": [2**63 - 1, 0]},
    {"op": "one_hot", "column": "s", "output": "hot", "vocabulary": VOCABULARY},
    {"op": "one_hot", "column": "u8", "vocabulary": [255, 0]},
] + [
    {"op": "hash_bucket", "column": c, "output": f"hash_{c}_{b}", "buckets": b}
    for c in ("s", "i", "l", "i8", "u8", "u16", "u32", "b")
    for b in (1, 7, 2**31 - 1)
]


@pytest.fixture(scope="module")
def categorical_results(spark, tmp_path_factory):
    return run_both(
        spark, tmp_path_factory.mktemp("categorical"), _edge_strings(), CATEGORICAL, "categorical"
    )


@pytest.mark.parametrize(
    "output", [c for t in parse_transforms(CATEGORICAL, "t") for c in t.output_columns()]
)
def test_categorical_op_matches_spark(categorical_results, output):
    expected, batch = categorical_results
    assert_same(batch.arrow(output), expected.column(output), output)


def test_null_and_unseen_categories(categorical_results):
    expected, _ = categorical_results
    index = expected.column("index_s").to_pylist()
    assert index[EDGE_STRINGS.index(None)] == len(VOCABULARY) == index[EDGE_STRINGS.index("zz")]
    assert index[EDGE_STRINGS.index("A")] == len(VOCABULARY)  # byte comparison: no case folding
    assert expected.column("hash_s_2147483647")[0].as_py() == 42  # Spark's hash(null) is the seed


def _random_unicode(rng: np.random.Generator, count: int) -> list[str]:
    ranges = [
        (0x20, 0x7E),
        (0xA0, 0x24F),
        (0x370, 0x3FF),
        (0x4E00, 0x9FFF),
        (0xAC00, 0xD7A3),
        (0x1F300, 0x1FAFF),
        (0x0, 0x1F),
    ]
    out = []
    for length in rng.integers(0, 41, count):
        picks = rng.integers(0, len(ranges), length)
        out.append("".join(chr(int(rng.integers(ranges[p][0], ranges[p][1] + 1))) for p in picks))
    return out


def test_hash_bucket_matches_spark_on_random_unicode(spark, tmp_path):
    strings = ["", "a", "ab", "abc", "abcd", "abcde", "é", "日本語", "🙂🙂", None] + _random_unicode(
        np.random.default_rng(5), 3000
    )
    strings += ["a" * 1001, "日本語" * 333 + "é", "🙂" * 257, "x" * 4099]  # the longest finish on Python ints
    raw = [
        {"op": "hash_bucket", "column": "s", "output": f"h{b}", "buckets": b} for b in (2**31 - 1, 1000, 3)
    ]
    expected, batch = run_both(spark, tmp_path, pa.table({"s": pa.array(strings)}), raw, "hash")
    for b in (2**31 - 1, 1000, 3):
        assert_same(batch.arrow(f"h{b}"), expected.column(f"h{b}"), f"hash_bucket {b}")


# ---- datetime_part --------------------------------------------------------------------------------

DATETIME = [
    {"op": "datetime_part", "column": c, "output": f"{c}|{z}|{p}", "part": p, "timezone": z}
    for c in ("aware", "naive", "new_york", "millis")
    for z in ZONES
    for p in ("hour", "day_of_week", "month")
]


@pytest.fixture(scope="module")
def datetime_results(spark, tmp_path_factory):
    return run_both(spark, tmp_path_factory.mktemp("datetime"), _edge_timestamps(), DATETIME, "datetime")


@pytest.mark.parametrize("column", ["aware", "naive", "new_york", "millis"])
@pytest.mark.parametrize("zone", ZONES)
def test_datetime_part_matches_spark(datetime_results, column, zone):
    expected, batch = datetime_results
    for part in ("hour", "day_of_week", "month"):
        name = f"{column}|{zone}|{part}"
        assert_same(batch.arrow(name), expected.column(name), name)


def test_datetime_part_across_dst(datetime_results):
    expected, _ = datetime_results
    hours = expected.column("aware|America/New_York|hour").to_pylist()
    assert hours[1:5] == [1, 3, 1, 1]  # 01:59:59.999999 EST, 03:00 EDT, then 01:30 EDT and 01:30 EST
    assert expected.column("aware|Europe/Berlin|hour").to_pylist()[5:9] == [1, 3, 2, 2]
    assert expected.column("aware|UTC|day_of_week").to_pylist()[10] == 5  # 1970-01-01, a Thursday; 1 = Sunday


def test_nanosecond_timestamps_floor_like_microseconds():
    """Spark cannot read nanosecond Parquet; our side floors them like the microsecond value."""
    instants = [
        t for t in _edge_instants() if t is None or 1700 < t.year < 2200
    ]  # nanoseconds span 1677-2262
    micros = pa.array(instants, pa.timestamp("us", "UTC"))
    nanos = pc.add(micros.cast(pa.timestamp("ns", "UTC")), pa.scalar(999, pa.duration("ns")))
    raw = [
        {"op": "datetime_part", "column": "t", "output": p, "part": p, "timezone": "Europe/Berlin"}
        for p in ("hour", "month")
    ]
    transforms = parse_transforms(raw, "t")
    results = []
    for array in (micros, nanos):
        batch = FeatureBatch(pa.table({"t": array}))
        apply_transforms(batch, transforms)
        results.append(batch.table(["hour", "month"]))
    assert results[0].equals(results[1])


# ---- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"op": "scale", "column": "x"},
            'bundle.toml: transforms[0]: unknown op "scale"; valid: assemble, binarize, bucketize, '
            "bucketize_splits, clip, datetime_part, hash_bucket, impute, log1p, min_max_scale, one_hot, "
            "one_hot_index, rescale, round, scale_shift, sql, standard_scale, string_index",
        ),
        (
            {"op": "clip", "column": "x", "lo": 0, "upper": 1},
            'bundle.toml: transforms[0] (op "clip"): unknown field "lo"; valid: column, lower, output, upper',
        ),
        (
            {"op": "clip", "column": "x", "lower": 0},
            'bundle.toml: transforms[0] (op "clip"): missing field "upper"',
        ),
        (
            {"op": "standard_scale", "column": "x", "mean": 0, "std": 0},
            'bundle.toml: transforms[0] (op "standard_scale"): field "std" must be positive, got 0.0',
        ),
        (
            {"op": "datetime_part", "column": "t", "part": "hour", "timezone": "Mars/Olympus"},
            "bundle.toml: transforms[0] "
            '(op "datetime_part"): unknown time zone "Mars/Olympus"; use an IANA name such as '
            '"Europe/Berlin" or "UTC"',
        ),
        (
            {"op": "datetime_part", "column": "t", "part": "minute"},
            'bundle.toml: transforms[0] (op "datetime_part"): '
            'field "part" is "minute"; valid: hour, day_of_week, month',
        ),
        (
            {"op": "min_max_scale", "column": "x", "min": 1, "max": 1},
            'bundle.toml: transforms[0] (op "min_max_scale"): '
            'field "min" (1.0) must be less than "max" (1.0)',
        ),
        (
            {"op": "clip", "column": "x", "lower": 2, "upper": 1},
            'bundle.toml: transforms[0] (op "clip"): field "lower" (2.0) must not exceed "upper" (1.0)',
        ),
        (
            {"op": "bucketize", "column": "x", "boundaries": [1, 1]},
            'bundle.toml: transforms[0] (op "bucketize"): field "boundaries" must be strictly increasing',
        ),
        (
            {"op": "string_index", "column": "s", "vocabulary": []},
            'bundle.toml: transforms[0] (op "string_index"): field "vocabulary" must be a non-empty list',
        ),
        (
            {"op": "one_hot", "column": "s", "vocabulary": ["a", 1]},
            'bundle.toml: transforms[0] (op "one_hot"): '
            'field "vocabulary" must hold only strings or only 64-bit integers',
        ),
        (
            {"op": "hash_bucket", "column": "s", "buckets": 0},
            'bundle.toml: transforms[0] (op "hash_bucket"): '
            'field "buckets" must be between 1 and 2147483647, got 0',
        ),
        (
            {"op": "round", "column": "x", "scale": 1.5},
            'bundle.toml: transforms[0] (op "round"): field "scale" must be an integer, got 1.5',
        ),
        (
            {"op": "impute", "column": "x", "value": "0"},
            'bundle.toml: transforms[0] (op "impute"): field "value" must be a number, got "0"',
        ),
        (
            {"op": "impute", "column": "x", "value": NAN},
            'bundle.toml: transforms[0] (op "impute"): field "value" must be finite, got nan',
        ),
        ({"op": "log1p"}, 'bundle.toml: transforms[0] (op "log1p"): missing field "column"'),
        (
            {"column": "x"},
            'bundle.toml: transforms[0]: missing field "op"; valid ops: assemble, binarize, bucketize, '
            "bucketize_splits, clip, datetime_part, hash_bucket, impute, log1p, min_max_scale, one_hot, "
            "one_hot_index, rescale, round, scale_shift, sql, standard_scale, string_index",
        ),
    ],
)
def test_parse_errors_name_the_field(entry, message):
    with pytest.raises(BundleError) as caught:
        parse_transforms([entry], "bundle.toml")
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_parse_defaults_and_output_columns():
    hot, clip, part = parse_transforms(
        [
            {"op": "one_hot", "column": "color", "vocabulary": ["red", "blue"]},
            {"op": "clip", "column": "x", "lower": 0, "upper": 1},
            {"op": "datetime_part", "column": "t", "output": "h", "part": "hour"},
        ],
        "bundle.toml",
    )
    assert hot.output_columns() == ["color_red", "color_blue"] and hot.output_type() == pa.int64()
    assert (
        clip.output == "x"
        and clip.params == {"lower": 0.0, "upper": 1.0}
        and clip.output_type() == pa.float64()
    )
    assert part.params["timezone"] == "UTC"


def test_required_input_columns():
    transforms = parse_transforms(
        [
            {"op": "impute", "column": "x", "value": 0},
            {"op": "log1p", "column": "x", "output": "lx"},
            {"op": "one_hot", "column": "color", "vocabulary": ["red"]},
            {"op": "round", "column": "y", "output": "z", "scale": 1},
            {"op": "round", "column": "z", "output": "y", "scale": 0},
        ],
        "bundle.toml",
    )
    assert required_input_columns(transforms, ["lx", "color_red", "age", "y", "z"]) == [
        "x",
        "color",
        "y",
        "age",
    ]


# ---- FeatureBatch and type checks -----------------------------------------------------------------


def test_feature_batch_views():
    table = pa.table(
        {"a": pa.array([1, None, 3], pa.int64()), "b": pa.array([0.5, 1.5, None]), "s": ["x", "y", None]}
    )
    batch = FeatureBatch(table)
    assert batch.names() == ["a", "b", "s"] and batch.num_rows == 3
    matrix = batch.matrix(["a", "b"], dtype=torch.float64)
    assert (
        matrix.shape == (3, 2)
        and torch.isnan(matrix[1, 0])
        and torch.isnan(matrix[2, 1])
        and matrix[2, 0] == 3
    )
    assert np.array_equal(
        batch.numpy(["b", "a"]), np.array([[0.5, 1.0], [1.5, np.nan], [np.nan, 3.0]]), equal_nan=True
    )
    assert list(batch.pandas(["a"]).columns) == ["a"] and batch.pandas(["a"])["a"].dtype == np.float64
    batch.set(
        "k",
        TensorColumn(
            torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([True, False, True]), pa.int64()
        ),
    )
    assert batch.arrow("k").to_pylist() == [1, None, 3] and batch.table(["k", "s"]).column_names == ["k", "s"]


def test_feature_batch_errors():
    batch = FeatureBatch(pa.table({"s": ["x"]}))
    with pytest.raises(InputError, match='input has no column "missing" \\(needed by the bundle\\)'):
        batch.tensor("missing")
    with pytest.raises(BundleError, match='column "s" is string, not numeric'):
        batch.matrix(["s"])
    with pytest.raises(InputError, match='transform string_index on column "s" needs an integer column'):
        apply_transforms(
            batch, parse_transforms([{"op": "string_index", "column": "s", "vocabulary": [1]}], "t")
        )


@pytest.mark.parametrize(
    "side, expected",
    [
        ("right", [[2, 5, 6], [0, 0, 0], [2, 0, 0], [3, 4, 0]]),
        ("left", [[2, 5, 6], [0, 0, 0], [0, 0, 2], [0, 3, 4]]),
    ],
)
def test_padded_token_ids(side, expected):
    """A list column of a sliced batch (offsets not from 0, a null row whose slot still holds
    values underneath) becomes one padded tensor, nulls all padding."""
    whole = pa.array([[9, 9], [2, 5, 6], [7, 7], [2], [3, 4]], pa.list_(pa.int32()))
    null_over_values = pa.ListArray.from_arrays(
        whole.offsets, whole.values, mask=pa.array([False, False, True, False, False])
    )
    batch = FeatureBatch(pa.table({"ids": null_over_values.slice(1)}))
    padded = batch.padded("ids", side=side)
    assert padded.dtype == torch.int64 and padded.tolist() == expected
    assert batch.padded("ids", pad=-1, dtype=torch.int32).dtype == torch.int32


def test_padded_edge_cases():
    empty = FeatureBatch(pa.table({"ids": pa.array([], pa.list_(pa.int64()))}))
    assert empty.padded("ids").shape == (0, 0)
    all_null = FeatureBatch(pa.table({"ids": pa.array([None, None], pa.list_(pa.int64()))}))
    assert all_null.padded("ids").shape == (2, 0)
    with pytest.raises(InputError, match='column "ids" has a null inside a list'):
        FeatureBatch(pa.table({"ids": pa.array([[1, None]], pa.list_(pa.int64()))})).padded("ids")
    with pytest.raises(BundleError, match='column "f" is list<item: double>, not a list of integers'):
        FeatureBatch(pa.table({"f": pa.array([[1.0]])})).padded("f")
    with pytest.raises(ValueError, match="side must be"):
        all_null.padded("ids", side="middle")


def test_spark_side_rejects_what_ours_rejects(spark):
    from spark_backend.transforms import apply_transforms as spark_apply

    df = spark.createDataFrame([("x", 1.0)], "s string, v double")
    with pytest.raises(InputError, match='input has no column "nope"'):
        spark_apply(df, parse_transforms([{"op": "log1p", "column": "nope"}], "t"))
    with pytest.raises(
        InputError, match='transform log1p on column "s" needs a numeric column, but the column is string'
    ):
        spark_apply(df, parse_transforms([{"op": "log1p", "column": "s"}], "t"))
    with pytest.raises(
        InputError, match='transform hash_bucket on column "v" needs a string or integer column'
    ):
        spark_apply(df, parse_transforms([{"op": "hash_bucket", "column": "v", "buckets": 3}], "t"))


def test_spec_torch_and_spark_declare_the_same_ops():
    """Every op a bundle may name has a torch kernel and a Spark twin, and neither side has more:
    the spec's ops, the torch ops (``common.model.transform_ops`` and ``spark_ml_ops``) and
    ``spark_backend.transforms.SPARK_OPS`` are one set."""
    from common.model import spark_ml_ops, transform_ops
    from common.spec.transforms import OPS
    from spark_backend.transforms import SPARK_OPS

    spec, spark = set(OPS), set(SPARK_OPS)
    torch_ops = set(transform_ops.OPS) | set(spark_ml_ops.OPS)
    assert torch_ops == spec, f"torch kernels {sorted(torch_ops ^ spec)} differ from the spec's ops"
    assert spark == spec, f"Spark twins {sorted(spark ^ spec)} differ from the spec's ops"
