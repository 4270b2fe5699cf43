"""``compare`` against an output a production job already wrote (issue 24, item 3).

The production side is written by real Spark ML: a ``VectorUDT`` column (dense and sparse
vectors, and a null one) in Parquet, next to a column named differently from the harness's and
a column the harness does not write. The harness side is plain Arrow, as a Ray run writes it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.cli import main
from common.errors import JobError
from common.parity.compare import ColumnChoice, compare_outputs
from common.parity.vectors import is_spark_vector, vectors_to_lists

pytestmark = pytest.mark.spark

# id, probability as Spark ML writes it, prediction (the harness calls it score), a column of its own
ROWS = [
    (1, ("dense", [0.25, 0.75]), 0.75, "a"),
    (2, ("sparse", 2, [1], [0.5]), 0.5, "b"),
    (3, ("sparse", 3, [0, 2], [0.125, 0.875]), 0.875, "c"),
    (4, None, 0.0, "d"),
    (5, ("dense", [1.0, 0.0]), 0.0, "e"),
]
DENSE = {1: [0.25, 0.75], 2: [0.0, 0.5], 3: [0.125, 0.0, 0.875], 4: None, 5: [1.0, 0.0]}


@pytest.fixture(scope="module")
def production(spark, tmp_path_factory):
    """A Parquet folder written by Spark with a real VectorUDT column."""
    from pyspark.ml.linalg import Vectors

    def vector(spec):
        if spec is None:
            return None
        return Vectors.dense(spec[1]) if spec[0] == "dense" else Vectors.sparse(*spec[1:])

    rows = [(i, vector(v), p, extra) for i, v, p, extra in ROWS]
    path = tmp_path_factory.mktemp("production") / "tonight"
    frame = spark.createDataFrame(rows, ["id", "probability", "prediction", "batch_tag"])
    frame.repartition(2).write.parquet(str(path))
    return path


def harness(path, probability=None, score=None):
    ids = list(DENSE)
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "probability": pa.array(probability or [DENSE[i] for i in ids], pa.list_(pa.float64())),
            "score": pa.array(score or [p for _, _, p, _ in ROWS], pa.float64()),
        }
    )
    path.mkdir()
    pq.write_table(table, path / "part-0.parquet")
    return path


def test_spark_writes_vectors_as_the_struct_we_read(production):
    table = pq.read_table(production)
    assert is_spark_vector(table.schema.field("probability").type)
    by_id = dict(
        zip(table["id"].to_pylist(), vectors_to_lists(table["probability"]).to_pylist(), strict=True)
    )
    assert by_id == DENSE


def test_vectors_compare_with_lists_and_renamed_columns(production, tmp_path):
    ray = harness(tmp_path / "ray")
    report = compare_outputs(
        {"spark": production, "ray": ray},
        "id",
        choice=ColumnChoice(rename={"prediction": "score"}, one_sided_fails=False),
    )
    columns = {c.name: c for c in report.pairs[0].columns}
    assert columns["probability"].verdict == "bit-identical" and columns["probability"].compared == 5
    assert columns["score"].verdict == "bit-identical"
    assert columns["batch_tag"].verdict == "missing on ray (not compared)"
    assert report.ok, report.problems()

    differs = harness(
        tmp_path / "ray2", probability=[*[DENSE[i] for i in (1, 2)], [0.125, 1e-9, 0.875], None, [1.0, 0.0]]
    )
    report = compare_outputs(
        {"spark": production, "ray": differs},
        "id",
        choice=ColumnChoice(ignore=("batch_tag", "prediction", "score")),
    )
    columns = {c.name: c for c in report.pairs[0].columns}
    assert list(columns) == ["probability"]
    assert columns["probability"].unequal == 1 and report.pairs[0].samples[0].key == {"id": 3}


def test_cli_columns_ignore_and_rename(production, tmp_path, capsys):
    ray = harness(tmp_path / "ray")
    base = ["compare", str(production), str(ray), "--key", "id", "--names", "spark,ray"]
    # a column on one side only is reported, not failed
    assert main([*base, "--rename", "prediction=score"]) == 0
    assert "batch_tag" in capsys.readouterr().out
    # unless it is asked for
    assert main([*base, "--rename", "prediction=score", "--columns", "score,batch_tag"]) == 1
    out = capsys.readouterr().out
    assert "column batch_tag missing on ray" in out and "probability" not in out
    # without the rename, prediction and score are each on one side only: reported, still ok
    assert main([*base, "--ignore", "batch_tag"]) == 0
    out = capsys.readouterr().out
    assert "prediction" in out and "batch_tag" not in out
    # names that match nothing, a key ignored, a malformed rename: one line, exit 2
    for extra, words in [
        (["--columns", "scroe"], "--columns: no column 'scroe'"),
        (["--ignore", "id"], "--ignore: 'id' is a key column"),
        (["--rename", "prediction"], "--rename 'prediction': expected OLD=NEW"),
        (["--rename", "prediction=batch_tag"], "--rename gives two columns one name"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


def test_parity_of_one_jobs_runs_still_fails_on_a_missing_column(production, tmp_path):
    with pytest.raises(JobError, match="no column 'nope'"):
        compare_outputs({"a": production, "b": production}, "id", choice=ColumnChoice(columns=("nope",)))
    ray = harness(tmp_path / "ray")
    report = compare_outputs({"spark": production, "ray": ray}, "id")
    assert not report.ok and "spark vs ray: column batch_tag missing on ray" in report.problems()
