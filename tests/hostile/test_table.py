"""The bad-input hunt kept as a table: each row mutates the base job as a new user might, and must
end in exit 2, one line holding the row's words, nothing published and nothing else changed.

Every row here is refused before any engine starts (issue 22's rule: refuse on every backend at
load, never on one engine after it started), so each runs on reference, spark and ray in this
process for the cost of the driver's checks. Rows that need a running engine are in
``test_engine_cases.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile.support import (
    add_transform,
    base_job,
    csv_input,
    edit,
    error_lines,
    input_folder,
    rewrite_input,
    run,
    snapshot,
    with_column,
)

BACKENDS = ("reference", "spark", "ray")


def _corrupt_pages(job: Path) -> None:
    """A valid footer over page headers that cannot be decoded."""
    path = job.parent / "input.parquet"
    data = bytearray(path.read_bytes())
    data[4:60] = b"\xff" * 56
    path.write_bytes(bytes(data))


def _conflicting_csv(job: Path) -> None:
    folder = job.parent / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,x1,x2,cat\n1,1.0,2.0,a\n")
    (folder / "b.csv").write_text("id,x1,x2,cat\n2,1.0,[1],b\n")
    edit(job, 'path = "input.parquet"', 'path = "in"\nformat = "csv"')


def _nullability(job: Path) -> None:
    input_folder(job, ["part-0.parquet", "part-1.parquet"])
    path = job.parent / "in" / "part-1.parquet"
    table = pq.read_table(path)
    schema = table.schema.set(0, pa.field("id", pa.int64(), nullable=False))
    pq.write_table(table.cast(schema), path)


def _symlink_loop(job: Path) -> str:
    loop = job.parent / "loop.toml"
    os.symlink(loop, loop)
    return str(loop)


def _fifo_input(job: Path) -> None:
    os.mkfifo(job.parent / "fifo")
    edit(job, 'path = "input.parquet"', 'path = "fifo"')


def _key(i: int) -> str:
    return "" if i == 3 else f"k{i}"


# (id, defect, mutation of the job (may return the job path to run instead), words in the error)
CASES = [
    (
        "transform writes the key",
        "D3",
        lambda j: add_transform(j, 'op = "sql"\noutput = "id"\nexpr = "49 - id"'),
        ["key column", '"id"'],
    ),
    (
        "impute writes the key",
        "D3",
        lambda j: add_transform(j, 'op = "impute"\ncolumn = "x1"\noutput = "id"\nvalue = 0.0'),
        ["key column", '"id"'],
    ),
    (
        "transform changes a passthrough column in place",
        "D4",
        lambda j: (
            edit(j, 'passthrough = ["id", "cat"]', 'passthrough = ["id", "cat", "x2"]'),
            add_transform(j, 'op = "clip"\ncolumn = "x2"\nlower = 0.0\nupper = 0.5'),
        ),
        ["passthrough column", '"x2"'],
    ),
    (
        "output declared string, model returns numbers",
        "D8",
        lambda j: edit(j.parent / "bundle" / "bundle.toml", 'score = "float64"', 'score = "string"'),
        ["score", "string", "double"],
    ),
    (
        "model does not fit the features, dead_letter",
        "D7",
        lambda j: (
            edit(j, 'key = "id"', 'key = "id"\non_error = "dead_letter"'),
            edit(j.parent / "bundle" / "bundle.toml", '"cat_idx"]', '"cat_idx", "x2"]'),
        ),
        # the sklearn kind's feature-name check names it first; a model fitted on a bare matrix
        # reaches the preflight's "does not fit" (tests/hostile/test_engine_cases.py)
        ["fitted on", "x2"],
    ),
    (
        "passthrough listed twice",
        "D13",
        lambda j: edit(j, '["id", "cat"]', '["id", "cat", "cat"]'),
        ['"cat" twice'],
    ),
    (
        "output named like a passthrough column",
        "D13",
        lambda j: edit(j.parent / "bundle" / "bundle.toml", 'score = "float64"', 'cat = "float64"'),
        ['"cat"', "unique"],
    ),
    (
        "input column score passed through",
        "D13",
        lambda j: (
            rewrite_input(j, lambda t: with_column(t, "score", pa.array(np.zeros(t.num_rows)))),
            edit(j, '["id", "cat"]', '["id", "cat", "score"]'),
        ),
        ['"score"', "unique"],
    ),
    ("key listed twice", "D15", lambda j: edit(j, 'key = "id"', 'key = ["id", "id"]'), ['"key"', "twice"]),
    (
        "input column twice",
        "D15",
        lambda j: rewrite_input(
            j, lambda t: pa.Table.from_arrays([*t.columns, t.column("x2")], [*t.column_names, "x2"])
        ),
        ['"x2" appears twice'],
    ),
    (
        "list-typed key",
        "D15",
        lambda j: rewrite_input(
            j, lambda t: t.set_column(0, "id", pa.array([[i] for i in range(t.num_rows)]))
        ),
        ['key column "id"', "list"],
    ),
    ("CSV files with conflicting types", "D15", _conflicting_csv, ["b.csv", "types differ"]),
    ("job file is a symlink loop", "D15", _symlink_loop, ["loop.toml"]),
    ("files differ only in nullability", "D15", _nullability, ["part-1.parquet", "nullable"]),
    ("input is a FIFO", "D15", _fifo_input, ["fifo", "a FIFO, not a file or folder"]),
    (
        "empty artefact",
        "D15",
        lambda j: (j.parent / "bundle" / "model.joblib").write_bytes(b""),
        ["model.joblib", "empty"],
    ),
    (
        "artefact outside the bundle",
        "D15",
        lambda j: edit(
            j.parent / "bundle" / "bundle.toml",
            'artifact = "model.joblib"',
            'artifact = "../../../../../../../../etc/passwd"',
        ),
        ['"artifact"', "outside the bundle"],
    ),
    (
        "corrupt pages behind a valid footer",
        "D12",
        _corrupt_pages,
        ["input.parquet", "not a readable Parquet"],
    ),
    (
        "nanosecond timestamps",
        "D16",
        lambda j: rewrite_input(
            j,
            lambda t: (
                with_column(t, "t", pa.array(np.arange(t.num_rows), pa.timestamp("ns"))),
                {"version": "2.6"},
            ),
        ),
        ['"t"', "nanosecond"],
    ),
    (
        "float16 column",
        "D16",
        lambda j: rewrite_input(j, lambda t: with_column(t, "h", pa.array(np.zeros(t.num_rows, np.float16)))),
        ['"h"', "float16"],
    ),
    (
        "column name with a dot",
        "D16",
        lambda j: rewrite_input(j, lambda t: with_column(t, "a.b", pa.array(np.zeros(t.num_rows)))),
        ['"a.b"'],
    ),
    (
        "column name with a backtick",
        "D16",
        lambda j: rewrite_input(j, lambda t: with_column(t, "a`b", pa.array(np.zeros(t.num_rows)))),
        ['"a`b"'],
    ),
    (
        "columns equal but for case",
        "D16",
        lambda j: rewrite_input(j, lambda t: with_column(t, "X2", t.column("x2"))),
        ['"x2"', '"X2"', "case"],
    ),
    (
        "a[1].parquet beside a1.parquet",
        "D16",
        lambda j: input_folder(j, ["a[1].parquet", "a1.parquet"]),
        ["a[1].parquet", "pattern"],
    ),
    ("part{x}.parquet", "D16", lambda j: input_folder(j, ["part{x}.parquet"]), ["part{x}.parquet"]),
    ("part:1.parquet", "D14", lambda j: input_folder(j, ["part:1.parquet"]), ["part:1.parquet"]),
    (
        "quoted line break in a CSV cell",
        "D16",
        lambda j: csv_input(
            j, 'id,x1,x2,cat\n0,1.0,2.0,"a\nb"\n' + "".join(f"{i},1.0,2.0,a\n" for i in range(1, 9))
        ),
        ['"cat"', "line break"],
    ),
    (
        "string key with an empty value in CSV",
        "D5",
        lambda j: csv_input(j, "id,x1,x2,cat\n" + "".join(f"{_key(i)},1.0,2.0,a\n" for i in range(9))),
        ['"id"', "null"],
    ),
    ("unknown backend", "D15", lambda j: None, ["--backend", "garbage"]),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return base_job(tmp_path_factory.mktemp("hostile-template"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "defect", "mutate", "needles"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_exit_2_nothing_published_nothing_changed(
    tmp_path, capsys, template, backend, name, defect, mutate, needles
):
    job = base_job(tmp_path, template)
    target = mutate(job)
    path = target if isinstance(target, str) else str(job)
    before = snapshot(tmp_path)
    code, err = run(
        "run", path, "--backend", "garbage" if name == "unknown backend" else backend, capsys=capsys
    )
    assert code == 2, f"{defect} {name}: exit {code}: {err}"
    assert len(error_lines(err)) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{defect} {name}: {needle!r} not in {err}"
    assert not (job.parent / "out").exists(), "published"
    assert not list(job.parent.glob(".out.*")), "staging left"
    assert snapshot(tmp_path) == before, "a file outside the output changed"
