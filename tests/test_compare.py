"""The comparison engine: rows matched by key, type-aware equality, streaming, and the reports."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import InputError, JobError
from common.parity.column_diff import ulp_distance
from common.parity.compare import compare_outputs
from common.parity.report import format_summary, write_reports
from common.spec.parity import ParitySettings, Tolerance, parse_parity_settings


def write(path, table, parts=1):
    """Write ``table`` as a Parquet folder of ``parts`` files (plus engine litter to ignore)."""
    path.mkdir(parents=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for i in range(parts):
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), path / f"part-{i:03d}.parquet")
    (path / "_SUCCESS").write_text("")
    (path / ".part-000.parquet.crc").write_text("not parquet")
    return path


def predictions(n=100):
    ids = np.arange(n, dtype=np.int64)
    score = np.linspace(0.0, 1.0, n)
    return {"id": ids, "score": score, "margin": score * 3 - 1, "label": (score >= 0.5).astype(np.int64)}


def compare(tmp_path, a, b, key="id", settings=ParitySettings(), **kwargs):
    left = write(tmp_path / "a", pa.table(a) if isinstance(a, dict) else a)
    right = write(tmp_path / "b", pa.table(b) if isinstance(b, dict) else b)
    return compare_outputs({"a": left, "b": right}, key, settings, **kwargs)


def column(report, name, pair=0):
    return next(c for c in report.pairs[pair].columns if c.name == name)


# --- acceptance -----------------------------------------------------------------------------


def acceptance_sides():
    a = predictions()
    b = {k: v.copy() for k, v in a.items()}
    b["score"][10] = np.nextafter(b["score"][10], 2.0)  # one float, one ULP up
    b["label"][20] = 1 - b["label"][20]  # one decision
    b = {k: np.delete(v, 30) for k, v in b.items()}  # one key only in a
    return a, b


def test_acceptance_lists_exactly_the_three_differences(tmp_path):
    a, b = acceptance_sides()
    report = compare(tmp_path, a, b)

    assert not report.ok
    assert report.problems() == [
        "a vs b: 1 keys only in a",
        "a vs b: column score differs in 1 rows",
        "a vs b: column label differs in 1 rows",
    ]
    pair = report.pairs[0]
    assert (pair.matched, pair.left_only, pair.right_only) == (99, 1, 0)
    assert pair.left_only_examples == [{"id": 30}]
    score, label, margin = column(report, "score"), column(report, "label"), column(report, "margin")
    assert (score.unequal, score.max_ulps, score.verdict) == (1, 1, "DIFFERS")
    assert (label.unequal, label.decision_flips) == (1, None)  # not a declared label column
    assert margin.verdict == "bit-identical"
    assert [(s.key, sorted(s.columns)) for s in pair.samples] == [
        ({"id": 10}, ["score"]),
        ({"id": 20}, ["label"]),
    ]
    assert pair.samples[0].columns["score"] == (a["score"][10], np.nextafter(a["score"][10], 2.0))


def test_acceptance_one_ulp_passes_with_ulps_1(tmp_path):
    a, b = acceptance_sides()
    report = compare(tmp_path, a, b, settings=ParitySettings(default=Tolerance(ulps=1)))
    assert report.problems() == ["a vs b: 1 keys only in a", "a vs b: column label differs in 1 rows"]
    assert column(report, "score").verdict == "within tolerance"
    assert column(report, "margin").verdict == "bit-identical"


# --- float rules ----------------------------------------------------------------------------


def test_nan_inf_and_null_rules(tmp_path):
    inf = math.inf
    a = {"id": list(range(6)), "x": [math.nan, math.nan, inf, inf, -inf, 1.0]}
    b = {"id": list(range(6)), "x": [math.nan, None, 1e308, inf, inf, 1.0]}
    huge = ParitySettings(default=Tolerance(abs=math.inf, rel=1e300, ulps=2**62))
    for settings in (ParitySettings(), huge):
        report = compare(tmp_path / str(id(settings)), a, b, settings=settings)
        x = column(report, "x")
        assert (x.compared, x.unequal, x.null_mismatches) == (6, 3, 1)
        bad = sorted(s.key["id"] for s in report.pairs[0].samples)
        assert bad == [1, 2, 4]  # NaN vs null, +inf vs 1e308, -inf vs +inf


def test_ulp_distance_is_ordered_across_zero_and_per_width():
    tiny = np.nextafter(0.0, 1.0)
    a = np.array([tiny, -0.0, 1.0, -1.0])
    b = np.array([-tiny, 0.0, np.nextafter(1.0, 2.0), np.nextafter(-1.0, -2.0)])
    assert ulp_distance(a, b, 64).tolist() == [2, 0, 1, 1]
    big = np.array([-np.finfo(np.float64).max])
    assert ulp_distance(big, -big, 64)[0] == 2 * 0x7FEFFFFFFFFFFFFF
    f32 = np.array([1.0], dtype=np.float32)
    assert ulp_distance(f32, np.nextafter(f32, np.float32(2)), 32).tolist() == [1]


def test_float32_vs_float64_compared_after_widening(tmp_path):
    values = [0.5, 0.25, 1.0 / 3.0]
    a = pa.table({"id": [1, 2, 3], "p": pa.array(values, pa.float32())})
    b = pa.table({"id": [1, 2, 3], "p": pa.array(np.float32(values).astype(np.float64))})
    report = compare(tmp_path, a, b)
    p = column(report, "p")
    assert report.ok and p.type_differs and p.unequal == 0 and p.ulp_unit == "float32"
    assert (p.left_type, p.right_type) == ("float", "double")
    strict = compare_outputs(
        {"a": tmp_path / "a", "b": tmp_path / "b"}, "id", ParitySettings(strict_types=True)
    )
    assert strict.problems() == ["a vs b: column p is float vs double"]


def test_per_column_tolerance_overrides_default(tmp_path):
    a = {"id": [1, 2], "score": [0.5, 0.7], "margin": [1.0, 2.0]}
    b = {"id": [1, 2], "score": [0.5 + 1e-7, 0.7], "margin": [1.0 + 1e-7, 2.0]}
    settings = ParitySettings(default=Tolerance(abs=1e-9), columns={"score": Tolerance(abs=1e-6)})
    report = compare(tmp_path, a, b, settings=settings)
    assert column(report, "score").verdict == "within tolerance"
    assert column(report, "margin").verdict == "DIFFERS"
    assert column(report, "score").tolerance == "abs=1e-06"


def test_relative_tolerance(tmp_path):
    a = {"id": [1, 2], "x": [1e6, 1.0]}
    b = {"id": [1, 2], "x": [1e6 + 0.5, 1.5]}
    report = compare(tmp_path, a, b, settings=ParitySettings(default=Tolerance(rel=1e-6)))
    assert column(report, "x").unequal == 1 and report.pairs[0].samples[0].key == {"id": 2}


# --- other types ----------------------------------------------------------------------------


def test_timestamps_same_instant_in_other_units_and_zones(tmp_path):
    utc = [dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC), None]
    a = pa.table(
        {
            "id": [1, 2],
            "ms": pa.array(utc, pa.timestamp("ms", tz="UTC")),
            "zone": pa.array(utc, pa.timestamp("us", tz="UTC")),
            "naive": pa.array([u and u.replace(tzinfo=None) for u in utc], pa.timestamp("us")),
        }
    )
    b = pa.table(
        {
            "id": [1, 2],
            "ms": pa.array(utc, pa.timestamp("us", tz="UTC")),
            "zone": pa.array(utc, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz="Europe/Berlin")),
            "naive": pa.array(utc, pa.timestamp("ns", tz="UTC")),
        }
    )
    report = compare(tmp_path, a, b)
    assert report.ok, report.problems()
    assert all(c.type_differs for c in report.pairs[0].columns)


def test_int32_vs_int64_strings_and_booleans(tmp_path):
    a = pa.table(
        {
            "id": [1, 2, 3],
            "n": pa.array([1, 2, 3], pa.int32()),
            "s": ["x", "y", None],
            "f": [True, False, True],
        }
    )
    b = pa.table(
        {
            "id": [1, 2, 3],
            "n": [1, 2, 4],
            "s": pa.array(["x", "y", "z"]).dictionary_encode(),
            "f": [True, False, True],
        }
    )
    report = compare(tmp_path, a, b)
    assert (column(report, "n").unequal, column(report, "n").max_abs_diff) == (1, 1.0)
    assert (column(report, "s").unequal, column(report, "s").null_mismatches) == (1, 1)
    assert column(report, "f").verdict == "bit-identical"


def test_list_columns_element_by_element_with_tolerance(tmp_path):
    f32 = pa.list_(pa.float32())
    a = pa.table(
        {"id": [1, 2, 3, 4, 5], "emb": pa.array([[0.1, 0.2], [1.0, 2.0], [1.0], None, [np.nan]], f32)}
    )
    b = pa.table(
        {
            "id": [1, 2, 3, 4, 5],
            "emb": pa.array(
                [
                    [0.1, np.nextafter(np.float32(0.2), np.float32(1))],
                    [1.0, 2.0],
                    [1.0, 2.0],
                    [1.0],
                    [np.nan],
                ],
                f32,
            ),
        }
    )
    exact = compare(tmp_path / "exact", a, b)
    emb = column(exact, "emb")
    assert (emb.unequal, emb.null_mismatches, emb.ulp_unit) == (3, 1, "float32")
    assert emb.max_ulps == 1
    loose = compare(tmp_path / "loose", a, b, settings=ParitySettings(columns={"emb": Tolerance(ulps=1)}))
    assert column(loose, "emb").unequal == 2  # length 1 vs 2, and null vs list


def test_fixed_size_list_vs_list(tmp_path):
    rows = [[1.0, 2.0], [3.0, 4.0]]
    a = pa.table({"id": [1, 2], "v": pa.array(rows, pa.list_(pa.float64(), 2))})
    b = pa.table({"id": [1, 2], "v": pa.array(rows, pa.list_(pa.float64()))})
    report = compare(tmp_path, a, b)
    assert report.ok and column(report, "v").verdict == "bit-identical"


# --- keys -----------------------------------------------------------------------------------


def test_duplicate_and_null_keys_reported_per_side(tmp_path):
    a = pa.table({"id": [1, 2, 2, 3, None], "x": [1.0, 2.0, 2.0, 3.0, 4.0]})
    b = pa.table({"id": [1, 2, 3, 3, 3], "x": [1.0, 2.0, 3.0, 3.0, 3.0]})
    report = compare(tmp_path, a, b)
    sa, sb = report.sides
    assert (sa.duplicate_keys, sa.duplicate_rows, sa.null_keys) == (1, 2, 1)
    assert (sb.duplicate_keys, sb.duplicate_rows, sb.null_keys) == (1, 3, 0)
    assert sa.duplicate_examples == [{"id": 2, "rows": 2}]
    assert sb.duplicate_examples == [{"id": 3, "rows": 3}]
    pair = report.pairs[0]
    assert (pair.matched, pair.duplicate_keys_skipped, pair.left_only, pair.right_only) == (1, 2, 0, 0)
    assert report.problems() == [
        "a: 1 rows with a null key",
        "a: 1 keys occur more than once (2 rows; not compared)",
        "b: 1 keys occur more than once (3 rows; not compared)",
    ]


def test_row_order_and_file_split_do_not_matter(tmp_path):
    table = pa.table(predictions(500))
    shuffled = table.take(np.random.default_rng(1).permutation(500))
    left = write(tmp_path / "a", table, parts=1)
    right = write(tmp_path / "b", shuffled, parts=4)
    (right / "_dead_letter").mkdir()
    pq.write_table(pa.table({"id": [999]}), right / "_dead_letter" / "part-0.parquet")
    report = compare_outputs({"a": left, "b": right}, "id")
    assert report.ok, report.problems()
    assert report.sides[1].files == 4
    assert all(c.verdict == "bit-identical" for c in report.pairs[0].columns)


def test_composite_key_with_different_integer_widths(tmp_path):
    a = pa.table(
        {"store": pa.array([1, 1, 2], pa.int32()), "day": ["mon", "tue", "mon"], "y": [1.0, 2.0, 3.0]}
    )
    b = pa.table({"store": [2, 1, 1], "day": ["mon", "tue", "mon"], "y": [3.0, 2.5, 1.0]})
    report = compare(tmp_path, a, b, key=["store", "day"])
    assert report.pairs[0].matched == 3
    assert [s.key for s in report.pairs[0].samples] == [{"store": 1, "day": "tue"}]


def test_key_types_are_unified_before_hashing(tmp_path):
    days = [dt.date(2024, 1, d) for d in (1, 2, 3)]
    a = pa.table(
        {
            "user": pa.array(["u1", "u2", "u3"]).dictionary_encode(),
            "day": pa.array(days, pa.date32()),
            "y": [1.0, 2.0, 3.0],
        }
    )
    b = pa.table(
        {
            "user": pa.array(["u3", "u2", "u1"], pa.large_string()),
            "day": pa.array(days[::-1], pa.date32()),
            "y": [3.0, 2.0, 1.0],
        }
    )
    report = compare(tmp_path, a, b, key=["user", "day"], bucket_rows=1)
    assert report.ok and report.pairs[0].matched == 3 and report.buckets == 3


def test_several_spill_buckets_give_the_same_answer(tmp_path):
    a, b = acceptance_sides()
    a = {k: np.concatenate([v, v + 1000]) if k == "id" else np.concatenate([v, v]) for k, v in a.items()}
    b = {k: np.concatenate([v, v + 1000]) if k == "id" else np.concatenate([v, v]) for k, v in b.items()}
    one = compare(tmp_path / "one", a, b)
    many = compare(tmp_path / "many", a, b, bucket_rows=15, work_dir=tmp_path / "work")
    assert (one.buckets, many.buckets) == (1, 14)
    assert one.problems() == many.problems()
    assert [c.unequal for c in one.pairs[0].columns] == [c.unequal for c in many.pairs[0].columns]
    assert sorted(s.key["id"] for s in many.pairs[0].samples) == [10, 20, 1010, 1020]
    assert not (tmp_path / "work").exists()  # spill files are removed, and the folder made for them
    for d1, d2 in zip(one.distributions, many.distributions, strict=True):
        assert d1.sides == d2.sides and d1.comparisons == d2.comparisons


def test_missing_column_reported_and_others_still_compared(tmp_path):
    a = predictions(10)
    b = {k: v for k, v in a.items() if k != "margin"}
    b["extra"] = np.zeros(10)
    report = compare(tmp_path, a, b)
    assert column(report, "margin").verdict == "missing on b"
    assert column(report, "extra").verdict == "missing on a"
    assert column(report, "score").verdict == "bit-identical"
    assert len(report.problems()) == 2


def test_incompatible_types_reported(tmp_path):
    report = compare(tmp_path, {"id": [1], "c": ["1"]}, {"id": [1], "c": [1]})
    assert column(report, "c").verdict == "INCOMPATIBLE" and not report.ok


# --- three sides ----------------------------------------------------------------------------


def test_three_way_names_the_side_that_left_the_reference(tmp_path):
    base = predictions(50)
    ray = {k: v.copy() for k, v in base.items()}
    ray["score"][[3, 7, 9]] += 1e-3
    sides = {
        "reference": write(tmp_path / "ref", pa.table(base)),
        "spark": write(tmp_path / "spark", pa.table(base), parts=3),
        "ray": write(tmp_path / "ray", pa.table(ray)),
    }
    report = compare_outputs(sides, "id", reference="reference")
    assert [p.name for p in report.pairs] == ["reference vs spark", "reference vs ray", "spark vs ray"]
    assert report.reference_findings() == [
        "ray differs from reference on score in 3 rows; spark agrees with reference"
    ]
    assert "ray differs from reference on score in 3 rows" in format_summary(report)


# --- settings and errors --------------------------------------------------------------------


def test_parse_parity_settings():
    settings = parse_parity_settings(
        {
            "abs": 1e-9,
            "ulps": 4,
            "sample_size": 3,
            "columns": {"score": {"abs": 1e-6}},
            "label_columns": ["label"],
        },
        "job.toml",
    )
    assert settings.default == Tolerance(abs=1e-9, ulps=4)
    assert settings.tolerance_for("score") == Tolerance(abs=1e-6)
    assert settings.tolerance_for("other") == settings.default
    assert (settings.sample_size, settings.label_columns) == (3, ("label",))
    assert parse_parity_settings({}, "job.toml") == ParitySettings()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"tolerance": 1},
            '[parity]: unknown field "tolerance"; valid: abs, certificate_dir, columns, label_columns, rel, '
            "sample_size, score_columns, strict_types, threshold, ulps",
        ),
        (
            {"columns": {"score": {"atol": 1}}},
            '[parity.columns.score]: unknown field "atol"; valid: abs, rel, ulps',
        ),
        ({"abs": -1}, '[parity]: field "abs" must be >= 0, got -1.0'),
        ({"ulps": 1.5}, '[parity]: field "ulps" must be an integer, got 1.5'),
        ({"strict_types": "yes"}, '[parity]: field "strict_types" must be true or false, got "yes"'),
        ({"threshold": float("nan")}, '[parity]: field "threshold" must be finite, got nan'),
    ],
)
def test_bad_parity_settings_name_the_key(section, message):
    with pytest.raises(JobError, match=re.escape(message)) as error:
        parse_parity_settings(section, "job.toml")
    assert str(error.value).startswith("job.toml: ") and "\n" not in str(error.value)


def test_unusable_settings_and_inputs_fail_with_one_line(tmp_path):
    a = write(tmp_path / "a", pa.table(predictions(5)))
    with pytest.raises(JobError, match="parity.columns.label: column 'label' is int64"):
        compare_outputs({"a": a, "b": a}, "id", ParitySettings(columns={"label": Tolerance(abs=1)}))
    with pytest.raises(JobError, match="parity.score_columns: no column 'nope'"):
        compare_outputs({"a": a, "b": a}, "id", ParitySettings(score_columns=("nope",)))
    with pytest.raises(InputError, match="b output .*missing does not exist"):
        compare_outputs({"a": a, "b": tmp_path / "missing"}, "id")
    with pytest.raises(InputError, match="a output .* has no key column 'key'"):
        compare_outputs({"a": a, "b": a}, "key")
    with pytest.raises(JobError, match="reference side 'ref' is not one of the outputs"):
        compare_outputs({"a": a, "b": a}, "id", reference="ref")


# --- reports --------------------------------------------------------------------------------


def test_reports_json_html_and_summary(tmp_path):
    a, b = acceptance_sides()
    b["score"][40] = np.nan  # id 41 (id 30 was dropped): a non-finite value must survive JSON
    report = compare(tmp_path, a, b, settings=ParitySettings(label_columns=("label",)))
    paths = write_reports(report, tmp_path / "out")

    data = json.loads(paths["json"].read_text())
    assert data["ok"] is False
    score = next(c for c in data["pairs"][0]["columns"] if c["name"] == "score")
    assert (score["unequal"], score["max_ulps"], score["verdict"]) == (2, 1, "DIFFERS")
    nan_sample = next(s for s in data["pairs"][0]["samples"] if s["key"] == {"id": 41})
    assert nan_sample["columns"]["score"][1] == "NaN"
    dist = {d["column"]: d for d in data["distributions"]}
    assert set(dist) == {"score", "margin"}
    assert set(dist["score"]["sides"]["a"]["quantiles"]) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
    assert dist["score"]["comparisons"][0]["ks"] is not None

    page = paths["html"].read_text()
    assert "<img" in page and "src='data:image/png;base64," in page
    assert not re.search(r"https?://", page)
    assert "PARITY FAILED" in page

    summary = format_summary(report)
    assert max(len(line) for line in summary.splitlines()) <= 100
    assert "only in a: id=30" in summary and "PARITY FAILED (3 problems)" in summary


def test_html_escapes_values(tmp_path):
    report = compare(tmp_path, {"id": ["<b>x</b>"], "s": ["<script>"]}, {"id": ["<b>x</b>"], "s": ["ok"]})
    page = write_reports(report, tmp_path / "out")["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_identical_scores_have_zero_drift(tmp_path):
    data = predictions(1000)
    report = compare(tmp_path, data, data)
    (score,) = [d for d in report.distributions if d.column == "score"]
    assert score.comparisons[0]["ks"] == 0.0 and score.comparisons[0]["psi"] == 0.0
    assert score.sides["a"]["quantiles"]["p50"] == pytest.approx(0.5)
