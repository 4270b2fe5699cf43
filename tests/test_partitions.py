"""The divergence catalogue (issue 23 item 2): Hive-partitioned trap directories, read by Spark's
own ``spark.read.parquet`` as ground truth, and by the harness's three readers (the reference's
``InputInfo.iter_batches``, Ray's ``read_unit`` in a Ray task, Spark's ``read_input``), which
attach the partition values the driver typed once (``common.run.partitions``).

Where Spark drops rows without a word or fails on a layout, the harness refuses with one line
naming the files. Then ``[input] where``: partition pruning on the driver, on every backend.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import InputError, JobError
from common.run.inputs import inspect_input
from common.run.runner import run_job
from common.spec.job import load_job
from tests.support import input_table, make_job, read_output

# name -> (folders under the root, each holding one file with rows x = [i, i + 100])
TRAPS = {
    "leading zeros": ["month=01", "month=02", "month=10"],
    "dates": ["dt=2024-01-01", "dt=2024-02-29"],
    "timestamps with %3A": ["ts=2024-01-01 10%3A00%3A00", "ts=2024-01-01 10%3A30%3A00.5"],
    "values over int32": ["id=12345678901", "id=7"],
    "the default partition": ["region=emea", "region=__HIVE_DEFAULT_PARTITION__"],
    "special characters and a space": ["city=New York", "city=a%2Fb", "city=x%3Dy", "city=caf%C3%A9"],
    "int and double widen to double": ["num=1", "num=1.5"],
    "int and text widen to string": ["num=1", "num=abc"],
    "two levels": ["dt=2024-01-01/region=emea", "dt=2024-01-02/region=apac"],
    "upper-case column names": ["Region=EMEA/Day=1", "Region=APAC/Day=2"],
    "sidecar files": ["k=1", "k=2"],
    "k=v above the root": ["k=1", "k=2"],
}


def build(root: Path, name: str) -> Path:
    """Writes the trap ``name`` under ``root``; returns the input folder."""
    base = root / "env=prod" / "table" if name == "k=v above the root" else root
    for i, folder in enumerate(TRAPS[name]):
        (base / folder).mkdir(parents=True)
        pq.write_table(pa.table({"x": pa.array([i, i + 100], pa.int64())}), base / folder / "part-0.parquet")
    if name == "sidecar files":
        (base / "_SUCCESS").write_text("")
        (base / "k=1" / ".part-9.parquet.crc").write_bytes(b"\0crc")  # not part-0's: Hadoop checks that
        (base / "k=1" / "_temporary" / "0").mkdir(parents=True)  # a speculative task's leftovers
        pq.write_table(
            pa.table({"x": pa.array([999], pa.int64())}), base / "k=1" / "_temporary" / "0" / "p.parquet"
        )
    return base


def ours(spark, ray, folder: Path) -> dict[str, pa.Table]:
    """The folder read by the harness's three readers, each sorted by x."""
    from ray_backend.reading import read_unit
    from spark_backend.reading import read_input

    info = inspect_input(folder, "parquet")
    items = [{"path": p, "groups": list(range(len(info.group_rows[p]))), "rows": 0} for p in info.paths]

    @ray.remote
    def read_in_ray(item):
        return pa.concat_tables(read_unit(item, info.schema.names, 64, partitions=info.partitions))

    return {
        "reference": pa.Table.from_batches(list(info.iter_batches(64)), info.schema),
        "ray": pa.concat_tables(ray.get([read_in_ray.remote(i) for i in items])),
        "spark": read_input(spark, info).toArrow(),
    }


@pytest.mark.parametrize("name", list(TRAPS))
def test_partition_catalogue_matches_spark(spark, ray_local, tmp_path, name):
    folder = build(tmp_path, name)
    truth = spark.read.parquet(str(folder)).toArrow().sort_by("x")
    for reader, table in ours(spark, ray_local, folder).items():
        table = table.sort_by("x")
        assert table.schema.names == truth.schema.names, (reader, table.schema, truth.schema)
        assert [str(t) for t in table.schema.types] == [str(t) for t in truth.schema.types], (
            reader,
            table.schema,
        )
        assert table.to_pylist() == truth.to_pylist(), (reader, table.to_pylist(), truth.to_pylist())


@pytest.mark.parametrize(
    "name, folders, needle",
    [
        # Spark reads only the k=v folder's file and drops the root's rows without a word.
        ("a file in a non-leaf folder", ["", "k=1"], "lie in different partition layouts"),
        ("different columns", ["a=1", "b=1"], "(a= and b=)"),
        ("an empty value", ["k="], "has an empty partition value"),
    ],
)
def test_partition_layouts_refused(spark, tmp_path, name, folders, needle):
    for i, folder in enumerate(folders):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [i]}), tmp_path / folder / f"part-{i}.parquet")
    with pytest.raises(InputError) as caught:
        inspect_input(tmp_path, "parquet")
    assert needle in str(caught.value), str(caught.value)
    if name == "a file in a non-leaf folder":  # what Spark does instead: one of the two rows
        assert spark.read.parquet(str(tmp_path)).count() == 1
    if name == "an empty value":
        with pytest.raises(Exception, match="EMPTY_PARTITION_COLUMN_VALUE"):
            spark.read.parquet(str(tmp_path)).collect()


def test_mixed_file_schemas_refused_naming_two_files(tmp_path):
    for i, typ in enumerate((pa.int64(), pa.float64())):
        (tmp_path / f"k={i}").mkdir()
        pq.write_table(pa.table({"x": pa.array([1], typ)}), tmp_path / f"k={i}" / "part-0.parquet")
    with pytest.raises(InputError, match=r"k=1/part-0.parquet: schema differs from part-0.parquet"):
        inspect_input(tmp_path, "parquet")


def test_declared_partition_types(tmp_path):
    """``[input.partition_types]`` replaces inference: ``month=01`` kept as the string "01"; a
    value that does not fit its declared type is refused, naming the file."""
    folder = build(tmp_path, "leading zeros")
    info = inspect_input(folder, "parquet", partition_types={"month": "string"})
    assert info.schema.field("month").type == pa.string()
    assert sorted(info.read_columns(["month"]).column("month").to_pylist()) == [
        "01",
        "01",
        "02",
        "02",
        "10",
        "10",
    ]
    (folder / "month=x1").mkdir()
    pq.write_table(pa.table({"x": pa.array([5], pa.int64())}), folder / "month=x1" / "p.parquet")
    with pytest.raises(InputError, match=r"partition value 'x1' of column \"month\" is not a int64"):
        inspect_input(folder, "parquet", partition_types={"month": "bigint"})


def daily_job(root: Path, where: str) -> Path:
    """make_job's input cut into dt=2024-01-0{1..4}/region={emea,apac} partitions, with ``where``."""
    job = make_job(root, rows=80)
    table = input_table(80)
    (root / "input.parquet").unlink()
    for i in range(8):
        day, region = 1 + i // 2, ("emea", "apac")[i % 2]
        folder = root / "daily" / f"dt=2024-01-0{day}" / f"region={region}"
        folder.mkdir(parents=True)
        pq.write_table(table.slice(i * 10, 10), folder / "part-0.parquet")
    text = job.read_text().replace('path = "input.parquet"', f'path = "daily"\nwhere = "{where}"')
    job.write_text(text.replace('passthrough = ["id", "cat"]', 'passthrough = ["id", "cat", "dt", "region"]'))
    return job


def test_where_prunes_partitions_on_every_backend(any_backend, tmp_path):
    """``dt >= DATE '2024-01-03' AND region = 'emea'``: the driver keeps the two matching files, and
    every backend reads only their rows (ids 40-49 and 60-69), with typed dt and region."""
    job = load_job(daily_job(tmp_path, "dt >= DATE '2024-01-03' AND region = 'emea'"))
    result = run_job(job, any_backend, check_model=False)
    assert (result.rows_in, result.rows_out) == (20, 20)
    out = read_output(job.output_path)
    assert out.column("id").to_pylist() == [*range(40, 50), *range(60, 70)]
    assert out.schema.field("dt").type == pa.date32() and set(out.column("region").to_pylist()) == {"emea"}


@pytest.mark.parametrize(
    "where, needle",
    [
        ("x1 > 0 AND region = 'emea'", '"x1" is a column of the files; where filters partition columns only'),
        ("nope = 1", '"nope" is no column'),
        ("dt >= ", "[input] where"),
        ("dt > DATE '2030-01-01'", "selects no partition"),
        ("dt > '2030-01-01'", "a comparison mixes date, string"),  # the compiler's rule: CAST or DATE
    ],
)
def test_where_refusals(tmp_path, where, needle):
    job = load_job(daily_job(tmp_path, where))
    with pytest.raises((JobError, InputError)) as caught:
        inspect_input(job.input_path, "parquet", where=job.where)
    assert needle in str(caught.value), str(caught.value)
