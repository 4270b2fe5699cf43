"""The property layer of the hunt: hypothesis writes job and bundle files, column types and file
layouts around the base job, and every run on the reference backend must end in one of two ways:

- exit 0, every input row once in the output (or in ``_dead_letter``);
- exit 2, one line, nothing published, no staging folder left;

never a traceback, and never a changed file outside the output. A fixed budget runs in the normal
test run; ``BATCH_PREDICT_HUNT_EXAMPLES=2000`` runs a longer hunt by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.run.dead_letter import dead_letter_files
from tests.hostile.support import base_job, error_lines, run, snapshot
from tests.support import read_output

EXAMPLES = int(os.environ.get("BATCH_PREDICT_HUNT_EXAMPLES", "20"))
COLUMNS = ["id", "x1", "x2", "cat"]
NAMES = ["id", "x1", "x2", "cat", "score", "x1_filled", "x2_z", "cat_idx", "extra", "X2", "a.b", ""]
TYPES = {
    "float64": pa.float64(),
    "float32": pa.float32(),
    "int64": pa.int64(),
    "int8": pa.int8(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "float16": pa.float16(),
    "ts_us": pa.timestamp("us", tz="UTC"),
    "ts_ns": pa.timestamp("ns"),
    "date": pa.date32(),
}
FILE_NAMES = [
    "part-0.parquet",
    "part-1.parquet",
    "a[1].parquet",
    "b{x}.parquet",
    "c:1.parquet",
    "_hidden.parquet",
    ".dot.parquet",
    "d e.parquet",
    "ünï.parquet",
    "f.csv",
]

transforms = st.lists(
    st.one_of(
        st.builds(
            lambda c, o: {"op": "impute", "column": c, "output": o, "value": 0.0},
            st.sampled_from(COLUMNS),
            st.sampled_from(NAMES),
        ),
        st.builds(
            lambda c, o: {"op": "clip", "column": c, "output": o, "lower": 0.0, "upper": 1.0},
            st.sampled_from(COLUMNS + ["x1_filled"]),
            st.sampled_from(NAMES),
        ),
        st.builds(
            lambda c: {"op": "clip", "column": c, "lower": 0.0, "upper": 1.0}, st.sampled_from(COLUMNS)
        ),
        st.builds(
            lambda e, o: {"op": "sql", "output": o, "expr": e},
            st.sampled_from(["x2 * 2.0D", "id + 1", "upper(cat)", "x1 / 0", "CAST(cat AS INT)"]),
            st.sampled_from(NAMES),
        ),
    ),
    max_size=3,
)

hostile = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["id"] * 6 + [["id"], ["id", "cat"], "cat", "x1", ["id", "id"], "nope"]),
        "passthrough": st.one_of(st.just([]), st.just(["cat"]), st.lists(st.sampled_from(NAMES), max_size=3)),
        "on_error": st.sampled_from(["fail", "dead_letter"]),
        "chunk_rows": st.sampled_from([None, 1, 7, 1000]),
        "transforms": st.one_of(st.just([]), transforms),
        "outputs": st.sampled_from(
            [
                {"score": "float64"},
                {"score": "float32"},
                {"score": "string"},
                {"score": "int64"},
                {"cat": "float64"},
                {"score": "list<float32>"},
            ]
        ),
        "artifact": st.sampled_from(
            [
                "model.joblib",
                "model.joblib",
                "../bundle/model.joblib",
                "nope.joblib",
                "../../../../etc/passwd",
                "/etc/hostname",
            ]
        ),
        "rows": st.sampled_from([0, 1, 5, 40]),
        "types": st.one_of(
            st.just({}), st.dictionaries(st.sampled_from(COLUMNS), st.sampled_from(list(TYPES)), max_size=2)
        ),
        "nulls": st.sets(st.sampled_from(COLUMNS), max_size=2),
        "duplicate_key": st.sampled_from([False] * 4 + [True]),
        "extra": st.lists(
            st.tuples(st.sampled_from(NAMES[8:] + ["ID", "Cat"]), st.sampled_from(list(TYPES))), max_size=2
        ),
        "files": st.one_of(
            st.just(["part-0.parquet"]),
            st.lists(st.sampled_from(FILE_NAMES), min_size=1, max_size=3, unique=True),
        ),
        "single_file": st.booleans(),
    }
)

# Inputs a job must accept: the property is then "exit 0, every row once" (or a row-level error).
benign = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["id", ["id"]]),
        "passthrough": st.lists(st.sampled_from(["cat", "x1", "x2", "extra"]), max_size=3, unique=True),
        "on_error": st.sampled_from(["fail", "dead_letter"]),
        "chunk_rows": st.sampled_from([None, 1, 7, 1000]),
        "transforms": st.lists(
            st.builds(
                lambda c, o: {"op": "impute", "column": c, "output": o, "value": 0.0},
                st.sampled_from(["x1", "x2"]),
                st.sampled_from(["t1", "t2"]),
            ),
            max_size=1,
        ),
        "outputs": st.sampled_from([{"score": "float64"}, {"score": "float32"}]),
        "artifact": st.just("model.joblib"),
        "rows": st.sampled_from([0, 1, 5, 40]),
        "types": st.dictionaries(
            st.sampled_from(["x1", "x2"]),
            st.sampled_from(["float64", "float32", "int64", "int8"]),
            max_size=2,
        ),
        "nulls": st.sets(st.sampled_from(["x1", "x2", "cat"]), max_size=2),
        "duplicate_key": st.just(False),
        "extra": st.lists(
            st.tuples(st.just("extra"), st.sampled_from(["float64", "string", "ts_us", "bool", "date"])),
            max_size=1,
        ),
        "files": st.sampled_from(
            [
                ["part-0.parquet"],
                ["part-0.parquet", "part-1.parquet"],
                ["d e.parquet", "ünï.parquet"],
                ["f.csv"],
            ]
        ),
        "single_file": st.booleans(),
    }
)
recipes = st.one_of(benign, hostile)


def _column(name: str, typ: str, rows: int, rng) -> pa.Array:
    values = {
        "float64": lambda: pa.array(rng.normal(size=rows)),
        "float32": lambda: pa.array(rng.normal(size=rows).astype(np.float32)),
        "int64": lambda: pa.array(np.arange(rows, dtype=np.int64)),
        "int8": lambda: pa.array((np.arange(rows) % 100).astype(np.int8)),
        "string": lambda: pa.array([["a", "b", "", "c"][i % 4] for i in range(rows)]),
        "bool": lambda: pa.array([i % 2 == 0 for i in range(rows)]),
        "float16": lambda: pa.array(rng.normal(size=rows).astype(np.float16)),
        "ts_us": lambda: pa.array(np.arange(rows) * 1_000_000, TYPES["ts_us"]),
        "ts_ns": lambda: pa.array(np.arange(rows), TYPES["ts_ns"]),
        "date": lambda: pa.array(np.arange(rows, dtype=np.int32), pa.date32()),
    }[typ]()
    return values


def _input_table(recipe: dict) -> pa.Table:
    rng = np.random.default_rng(0)
    rows = recipe["rows"]
    base = {"id": "int64", "x1": "float64", "x2": "float64", "cat": "string", **recipe["types"]}
    names, arrays = [], []
    for name, typ in [*base.items(), *recipe["extra"]]:
        array = _column(name, typ, rows, rng)
        if name in recipe["nulls"] and rows:
            array = pa.array(array.to_pylist()[:-1] + [None], array.type)
        if name == "id" and recipe["duplicate_key"] and rows > 1:
            array = pa.array([array[0].as_py(), *array.to_pylist()[1:-1], array[0].as_py()], array.type)
        names.append(name)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names)


def _toml(value) -> str:
    return json.dumps(value)


def _write(job: Path, recipe: dict) -> None:
    root = job.parent
    table = _input_table(recipe)
    (root / "input.parquet").unlink()
    if recipe["single_file"]:
        name = recipe["files"][0]
        if name.endswith(".csv"):
            pacsv.write_csv(table, root / name)
        else:
            pq.write_table(table, root / name)
        path = name
    else:
        folder = root / "in"
        folder.mkdir()
        step = max(1, -(-table.num_rows // len(recipe["files"])))
        for i, name in enumerate(recipe["files"]):
            part = table.slice(i * step, step)
            if name.endswith(".csv"):
                pacsv.write_csv(part, folder / name)
            else:
                pq.write_table(part, folder / name)
        path = "in"
    lines = ["[job]", f"key = {_toml(recipe['key'])}", f"on_error = {_toml(recipe['on_error'])}"]
    if recipe["chunk_rows"]:
        lines.append(f"chunk_rows = {recipe['chunk_rows']}")
    lines += [
        "[input]",
        f"path = {_toml(path)}",
        "[output]",
        'path = "out"',
        f"passthrough = {_toml(recipe['passthrough'])}",
        "[model]",
        'bundle = "bundle"',
    ]
    job.write_text("\n".join(lines) + "\n")
    bundle = root / "bundle" / "bundle.toml"
    text = bundle.read_text().replace('artifact = "model.joblib"', f"artifact = {_toml(recipe['artifact'])}")
    head, _, rest = text.partition("[outputs]\n")
    rest = rest.split("\n", 1)[1]
    outputs = "".join(f"{_toml(k)} = {_toml(v)}\n" for k, v in recipe["outputs"].items())
    extra = "".join(
        "\n[[transforms]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in t.items())
        for t in recipe["transforms"]
    )
    bundle.write_text(head + "[outputs]\n" + outputs + rest + extra)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return base_job(tmp_path_factory.mktemp("hunt-template"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
@given(recipe=recipes)
def test_reference_run_publishes_every_row_once_or_fails_cleanly(template, capsys, recipe):
    root = Path(tempfile.mkdtemp(prefix="hunt-"))
    try:
        job = base_job(root, template)
        _write(job, recipe)
        before = snapshot(root)
        code, err = run("run", str(job), "--backend", "reference", capsys=capsys)
        event(f"exit {code} " + re.sub(r"/\S*/job/|\d+", "", err.removeprefix("batch-predict: error: "))[:60])
        assert "Traceback" not in err, err
        assert snapshot(root) == before, f"a file outside the output changed: {recipe}"
        out = job.parent / "out"
        if code == 0:
            output = read_output(out, "id") if _key_has_id(recipe) else None
            keys = output.num_rows if output is not None else 0
            dead = sum(pq.read_metadata(f).num_rows for f in dead_letter_files(out))
            assert output is None or keys + dead == recipe["rows"], (recipe, err)
            if output is not None and recipe["key"] in ("id", ["id"]):
                assert len(set(output.column("id").to_pylist())) == keys, (recipe, err)
        else:
            assert code == 2, (code, err, recipe)
            assert len(error_lines(err)) == 1, (err, recipe)
            assert "use --debug" not in err, ("an unexpected exception", err, recipe)
            assert not out.exists() and not list(job.parent.glob(".out.*")), (err, recipe)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _key_has_id(recipe: dict) -> bool:
    key = recipe["key"]
    return key == "id" or (isinstance(key, list) and "id" in key)
