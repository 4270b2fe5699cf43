"""The four torch workloads: each builds, learns, and gives the same answers on Spark and Ray.

Each example is built once per module at a small size into a temporary folder, with its committed
``job.toml`` beside it, so these tests run the job files as shipped.
"""

from __future__ import annotations

import importlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from common.errors import InputError
from common.model.predictor import Predictor
from common.run.runner import run_job
from common.spec.backends import engine_names
from common.spec.bundle import load_bundle
from common.spec.job import load_job
from tests.support import read_output

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# name -> (prediction rows, held-out metric, its threshold: measured values minus a margin)
WORKLOADS = {
    "tabular_torch": (2000, "holdout_accuracy", 0.75),  # measured 0.80; majority class 0.53
    "text_classification": (600, "holdout_accuracy", 0.93),  # measured 0.99; chance 0.5
    "generation": (300, "holdout_exact_match", 0.85),  # measured 0.99; chance ~0
    "images": (1000, "holdout_accuracy", 0.93),  # measured 0.98; chance 0.1
}
# Outputs with a float score; the others are compared exactly everywhere.
SCORES = {"tabular_torch": "score", "text_classification": "score", "images": "probability"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``built(name)`` -> (folder with data/, model/ and job.toml; build metrics), built on first use."""
    cache: dict[str, tuple[Path, dict]] = {}

    def get(name: str) -> tuple[Path, dict]:
        if name not in cache:
            folder = tmp_path_factory.mktemp(name)
            module = importlib.import_module(f"examples.{name}.build")
            metrics = module.build(size=WORKLOADS[name][0], seed=0, out_dir=folder)
            shutil.copy(EXAMPLES / name / "job.toml", folder / "job.toml")
            cache[name] = (folder, metrics)
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", WORKLOADS)
def test_build_learns_and_writes_a_valid_bundle(built, name):
    folder, metrics = built(name)
    rows, metric, threshold = WORKLOADS[name]
    assert metrics[metric] >= threshold, metrics
    assert metrics["rows"] == rows
    assert pq.read_metadata(folder / "data" / "input.parquet").num_rows == rows
    bundle = load_bundle(folder / "model")
    if bundle.kind == "python":  # the handler module travels inside the bundle
        assert (bundle.path / f"{bundle.entrypoint.partition(':')[0]}.py").is_file()


def test_tabular_majority_baseline_is_beaten(built):
    _, metrics = built("tabular_torch")
    assert metrics["holdout_accuracy"] > metrics["holdout_majority_rate"] + 0.15


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.ray
@pytest.mark.parametrize("name", WORKLOADS)
def test_spark_and_ray_give_the_same_answers(built, spark, ray_local, name):
    folder, _ = built(name)
    job = load_job(folder / "job.toml")
    outputs = {}
    for backend in engine_names():
        result = run_job(job.with_paths(output_path=folder / f"out_{backend}"), backend)
        assert result.rows_in == result.rows_out == WORKLOADS[name][0]
        outputs[backend] = read_output(folder / f"out_{backend}")

    keys = pq.read_table(folder / "data" / "input.parquet", columns=["id"]).column("id")
    for table in outputs.values():
        assert table.column("id").to_pylist() == sorted(keys.to_pylist())  # same key set, no duplicates
    spark_out, ray_out = outputs["spark"], outputs["ray"]
    assert spark_out.column_names == ray_out.column_names
    score = SCORES.get(name)
    for column in spark_out.column_names:
        if column == score:
            tolerance = job.parity.tolerance_for(score).abs
            diff = pc.max(pc.abs(pc.subtract(spark_out.column(score), ray_out.column(score)))).as_py()
            assert diff <= tolerance, f"{name}: {score} differs by {diff}"
        else:  # labels, generated text, token counts, passthrough: exactly equal
            assert spark_out.column(column).equals(ray_out.column(column)), f"{name}: {column} differs"


@pytest.mark.slow
def test_generation_does_not_depend_on_batch_composition(built):
    folder, _ = built("generation")
    predictor = Predictor(load_bundle(folder / "model"), passthrough=["id"])
    table = pq.read_table(folder / "data" / "input.parquet").slice(0, 60)

    def in_batches(size: int) -> pa.Table:
        return pa.concat_tables(
            predictor.predict(table.slice(i, size)) for i in range(0, table.num_rows, size)
        )

    together = predictor.predict(table)
    for size in (1, 3):
        split = in_batches(size)
        assert split.column("generated").equals(together.column("generated")), f"batches of {size}"
        assert split.column("num_tokens").equals(together.column("num_tokens")), f"batches of {size}"
    # and the model does the task: most answers are right
    assert pc.mean(pc.equal(together.column("generated"), table.column("expected"))).as_py() > 0.85


@pytest.mark.slow
@pytest.mark.parametrize("name", SCORES)
def test_classifier_labels_do_not_depend_on_batch_composition(built, name):
    folder, _ = built(name)
    job = load_job(folder / "job.toml")
    tolerance = job.parity.tolerance_for(SCORES[name]).abs
    predictor = Predictor(load_bundle(folder / "model"), passthrough=["id"])
    table = pq.read_table(folder / "data" / "input.parquet").slice(0, 300)
    together = predictor.predict(table)
    split = pa.concat_tables(predictor.predict(table.slice(i, 7)) for i in range(0, table.num_rows, 7))
    assert split.column("label").equals(together.column("label"))
    diff = np.abs(split.column(SCORES[name]).to_numpy() - together.column(SCORES[name]).to_numpy()).max()
    assert diff <= tolerance


@pytest.mark.parametrize(
    "name, column, outputs",
    [
        ("generation", "prompt", ("generated", "num_tokens")),
        ("text_classification", "text", ("label", "score")),
    ],
)
def test_a_null_text_gives_null_outputs_and_leaves_other_rows_alone(built, name, column, outputs):
    folder, _ = built(name)
    predictor = Predictor(load_bundle(folder / "model"))
    texts = pq.read_table(folder / "data" / "input.parquet", columns=[column]).column(column).to_pylist()[:3]
    plain = predictor.predict(pa.table({column: texts}))
    with_null = predictor.predict(pa.table({column: [texts[0], None, texts[2]]}))
    for output in outputs:
        expected = plain.column(output).to_pylist()
        assert with_null.column(output).to_pylist() == [expected[0], None, expected[2]]


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("rev:xyz=", "outside the model's alphabet"),
        ("", "empty prompt"),
        ("rev:" + "a" * 30 + "=", "exceeds the model's 32 positions"),
    ],
)
def test_generation_rejects_a_prompt_it_cannot_read(built, prompt, message):
    folder, _ = built("generation")
    predictor = Predictor(load_bundle(folder / "model"))
    with pytest.raises(InputError, match=message):
        predictor.predict(pa.table({"prompt": ["rev:abc=", prompt]}))


@pytest.mark.parametrize(
    "pixels, message",
    [
        ([None], "null images"),
        ([[1.0] * 63], "has 63 pixels"),
    ],
)
def test_images_reject_a_missing_or_malformed_image(built, pixels, message):
    folder, _ = built("images")
    predictor = Predictor(load_bundle(folder / "model"))
    with pytest.raises(InputError, match=message):
        predictor.predict(pa.table({"pixels": pa.array(pixels, pa.list_(pa.float32()))}))


def test_images_read_a_sliced_list_column(built):
    """A batch that is a slice of a larger Arrow array must read its own pixels, not the parent's."""
    folder, _ = built("images")
    predictor = Predictor(load_bundle(folder / "model"))
    table = pq.read_table(folder / "data" / "input.parquet").combine_chunks()
    sliced = predictor.predict(table.slice(10, 5))
    copied = predictor.predict(pa.Table.from_pylist(table.slice(10, 5).to_pylist(), schema=table.schema))
    assert sliced.equals(copied)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("name", ["text_classification", "generation"])
def test_tokenizing_in_a_cpu_operator_gives_the_same_answers(built, ray_local, name):
    """The GPU pipeline's shape, forced on here on CPU: the handler's ``preprocess`` (tokenizing)
    runs in a CPU operator ahead of the replicas, and every output is exactly what the fused run gives."""
    folder, _ = built(name)
    job = load_job(folder / "job.toml")
    outputs = {}
    for stage in (True, False):
        out = folder / f"out_stage_{stage}"
        run_job(replace(job.with_settings("ray", cpu_stage=stage), output_path=out), "ray")
        manifest = json.loads((out / "_manifest.json").read_text())
        assert manifest["engine"]["preprocess_stage"] is stage
        outputs[stage] = read_output(out)
    assert outputs[True].equals(outputs[False])


def test_a_prompt_the_cpu_stage_cannot_read_names_its_batch(built):
    from common.model.predictor import BatchFailedError, run_cpu_stage

    folder, _ = built("generation")
    table = pa.table({"id": [7, 8, 9], "prompt": ["rev:abc=", "rev:xyz=", None]})
    with pytest.raises(
        BatchFailedError,
        match=r"batch of 3 rows, id 7\.\.9 failed in the CPU stage: InputError: "
        r"column \"prompt\": .*outside the model's alphabet",
    ):
        run_cpu_stage(table, bundle_path=str(folder / "model"), transforms=[], preprocess=True, key=("id",))
    staged = run_cpu_stage(
        table.slice(0, 1), bundle_path=str(folder / "model"), transforms=[], preprocess=True, key=("id",)
    )
    assert staged.column_names == ["id", "prompt", "__prompt_token_ids"]
    # the replica, told the stage ran, predicts from the token ids alone
    predictor = Predictor(load_bundle(folder / "model"), host_stage_done=True)
    assert predictor.predict(staged).equals(
        Predictor(load_bundle(folder / "model")).predict(table.slice(0, 1))
    )
