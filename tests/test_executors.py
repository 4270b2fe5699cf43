"""Both executors (and the reference) run a real job end to end on real Spark and real Ray."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from common.run.output import MANIFEST, SUCCESS
from common.run.runner import run_job
from common.spec.backends import bundle_backend_names, engine_names
from common.spec.job import load_job
from tests.support import make_job, read_output


@pytest.fixture(scope="module")
def job_path(tmp_path_factory):
    return make_job(tmp_path_factory.mktemp("exec"), rows=700, files=3)


def test_run_writes_every_row_once(any_backend, job_path, tmp_path):
    backend = any_backend
    job = replace(load_job(job_path), output_path=tmp_path / backend)
    result = run_job(job, backend)
    assert result.rows_in == result.rows_out == 700
    out = read_output(tmp_path / backend)
    assert out.column_names == ["id", "cat", "score"]
    assert out.column("id").to_pylist() == list(range(700))
    assert pc.min(out.column("score")).as_py() >= 0.0 and pc.max(out.column("score")).as_py() <= 1.0
    assert (tmp_path / backend / SUCCESS).exists() and (tmp_path / backend / MANIFEST).exists()
    assert f"{backend}: rows in 700, rows out 700" in result.summary()


def test_backends_agree_exactly_on_sklearn_scores(job_path, engines, tmp_path):
    """Same transforms, same model, different engines: identical bits for this float64 model."""
    tables = {}
    for backend in bundle_backend_names():
        run_job(replace(load_job(job_path), output_path=tmp_path / backend), backend)
        tables[backend] = read_output(tmp_path / backend)
    assert tables["spark"].column("score").equals(tables["reference"].column("score"))
    assert tables["ray"].column("score").equals(tables["reference"].column("score"))


def test_empty_input_gives_empty_typed_output(backend, job_path, engines, tmp_path):
    empty = pq.read_table(job_path.parent / "input").slice(0, 0)
    pq.write_table(empty, tmp_path / "empty.parquet")
    job = load_job(job_path).with_paths(tmp_path / "empty.parquet", tmp_path / "out")
    result = run_job(job, backend)
    assert result.rows_out == 0
    out = read_output(tmp_path / "out")
    assert out.num_rows == 0 and out.column_names == ["id", "cat", "score"]


def test_csv_input_on_both_backends(job_path, engines, tmp_path):
    import pyarrow.csv as pacsv

    table = pq.read_table(job_path.parent / "input")
    pacsv.write_csv(table, tmp_path / "input.csv")
    outs = {}
    for backend in engine_names():
        job = load_job(job_path).with_paths(tmp_path / "input.csv", tmp_path / backend)
        assert run_job(job, backend).rows_out == 700
        outs[backend] = read_output(tmp_path / backend)
    assert outs["spark"].column("score").equals(outs["ray"].column("score"))


class _Resource:
    def __init__(self, addresses):
        self.addresses = addresses


class _TaskContext:
    """Stands in for pyspark.TaskContext: Spark hands GPUs only to tasks on a GPU cluster."""

    def __init__(self, gpus):
        self._resources = {"gpu": _Resource(gpus)} if gpus else {}

    def resources(self):
        return self._resources


def test_spark_task_device_follows_spark_gpu_scheduling():
    from spark_backend.executor import task_device

    assert task_device("auto", _TaskContext(["3"])) == "cuda:3"
    assert task_device("cuda", _TaskContext(["0", "1"])) == "cuda:0"
    assert task_device("cpu", _TaskContext(["3"])) == "cpu"
    assert task_device("auto", _TaskContext([])) == "cpu"  # no GPU from Spark: never grab one


def test_workers_run_on_cpu_here_and_report_it(job_path, engines, tmp_path):
    """On a CPU machine every path falls back cleanly: device auto resolves to cpu everywhere."""
    for backend in engine_names():
        result = run_job(replace(load_job(job_path), output_path=tmp_path / backend), backend)
        assert result.device == "cpu"


def test_split_host_stage_keeps_the_meaning_of_the_order():
    from common.spec.transforms import parse_transforms, split_host_stage

    transforms = parse_transforms(
        [
            {"op": "impute", "column": "x", "value": 0.0},
            {"op": "string_index", "column": "s", "output": "s_idx", "vocabulary": ["a"]},
            {"op": "standard_scale", "column": "s_idx", "output": "s_z", "mean": 0.0, "std": 1.0},
            {"op": "hash_bucket", "column": "n", "buckets": 4},
            {"op": "bucketize", "column": "n", "output": "n_b", "boundaries": [0.0]},
            {
                "op": "hash_bucket",
                "column": "x",
                "output": "x_h",
                "buckets": 4,
            },  # reads impute's output: stays
        ],
        "test",
    )
    host, rest = split_host_stage(transforms)
    assert [(t.op, t.column) for t in host] == [("string_index", "s"), ("hash_bucket", "n")]
    assert [(t.op, t.column) for t in rest] == [
        ("impute", "x"),
        ("standard_scale", "s_idx"),
        ("bucketize", "n"),
        ("hash_bucket", "x"),
    ]


def test_ray_cpu_stage_gives_the_same_output(job_path, engines, tmp_path):
    """The GPU pipeline's shape (host transforms as their own CPU operator), forced on here on CPU."""
    import json

    job = load_job(job_path)
    split = replace(job.with_settings("ray", concurrency=1, cpu_stage=True), output_path=tmp_path / "split")
    run_job(split, "ray")
    run_job(replace(job, output_path=tmp_path / "fused"), "ray")
    manifest = json.loads((tmp_path / "split" / MANIFEST).read_text())
    assert manifest["engine"]["host_stage_ops"] == ["string_index"]
    assert read_output(tmp_path / "split").equals(read_output(tmp_path / "fused"))


@pytest.mark.parametrize(
    "returned, message",
    [
        ({"cat": pa.array(["a"] * 3)}, 'preprocess returned column "cat", which the batch already has'),
        ({"tokens": pa.array([[1]] * 2)}, 'preprocess returned 2 rows in column "tokens" for a batch of 3'),
        ({"tokens": [[1], "x", 2]}, 'preprocess column "tokens": '),
        ([pa.array([1, 2, 3])], "preprocess returned list; expected a mapping"),
    ],
)
def test_a_broken_preprocess_is_the_bundle_s_fault(job_path, returned, message):
    """What ``preprocess`` returns is checked like model outputs: a clash, a wrong length or an
    unconvertible column fails with BundleError naming the bundle, never a misaligned batch."""
    from common.errors import BundleError
    from common.model.features import FeatureBatch
    from common.model.handler import has_preprocess
    from common.model.kinds.sklearn import SklearnHandler
    from common.model.predictor import add_preprocessed
    from common.spec.bundle import load_bundle

    class Tokenizing(SklearnHandler):
        def preprocess(self, batch):
            return returned

    bundle = load_bundle(job_path.parent / "bundle")
    assert has_preprocess(Tokenizing(bundle)) and not has_preprocess(SklearnHandler(bundle))
    batch = FeatureBatch(pa.table({"id": [1, 2, 3], "cat": ["a", "b", None]}))
    with pytest.raises(BundleError, match=f"bundle {bundle.path}: {re.escape(message)}"):
        add_preprocessed(batch, Tokenizing(bundle))
    add_preprocessed(batch, SklearnHandler(bundle))  # no hook: nothing added
    assert batch.names() == ["id", "cat"]


def test_ray_runs_one_fused_task_per_read_unit(engines, tmp_path, monkeypatch):
    """On CPUs each read unit (here a file) is one Ray task that reads, predicts and writes; with a
    CPU stage, read tasks feed the stage and an actor pool. Same rows either way, and an input of
    one unit gets one replica (no second one starts for nothing)."""
    import ray

    seen = []
    write_parquet = ray.data.Dataset.write_parquet

    def keep_dataset(self, *args, **kwargs):  # the real write; the dataset's stats are read after
        seen.append(self)
        return write_parquet(self, *args, **kwargs)

    monkeypatch.setattr(ray.data.Dataset, "write_parquet", keep_dataset)
    job = load_job(make_job(tmp_path / "job", rows=5000, files=4))
    plans = {}
    for name, settings in {"tasks": {}, "actors": {"cpu_stage": True}}.items():
        run_job(
            replace(job.with_settings("ray", concurrency=2, **settings), output_path=tmp_path / name), "ray"
        )
        plans[name] = dict(re.findall(r"Operator \d+ ([\w()>-]+): (\d+) tasks executed", seen[-1].stats()))
    assert plans["tasks"] == {"FromItems": "1", "MapBatches(predict_units)->Write": "4"}, plans
    assert "MapBatches(PredictBatches)" in " ".join(plans["actors"]), plans
    assert (
        read_output(tmp_path / "tasks").sort_by("id").equals(read_output(tmp_path / "actors").sort_by("id"))
    )
    one = load_job(make_job(tmp_path / "one", rows=10, files=1))
    run_job(replace(one, output_path=tmp_path / "one-out"), "ray")
    engine = json.loads((tmp_path / "one-out" / MANIFEST).read_text())["engine"]
    assert (engine["replicas"], engine["read_units"]) == (1, 1)
