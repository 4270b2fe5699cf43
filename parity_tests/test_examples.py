"""Every example job, built small, gives the reference's answers on every backend."""

from __future__ import annotations

import importlib
import shutil
from dataclasses import replace

import pytest

from common.spec.job import load_job
from examples.build import EXAMPLES_DIR, example_names
from parity_tests.conftest import assert_parity, run_against_reference

# generation_transformers decodes up to 10 tokens per row: fewer rows keep the suite quick.
SMALL_SIZES = {"tabular_sklearn": 1500, "generation_transformers": 128}


@pytest.fixture(scope="module", params=example_names())
def built_example(request, tmp_path_factory):
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    shutil.copy(EXAMPLES_DIR / name / "job.toml", folder / "job.toml")
    importlib.import_module(f"examples.{name}.build").build(SMALL_SIZES.get(name, 300), out_dir=folder)
    return load_job(folder / "job.toml")


def test_example_matches_reference(built_example, backend, tmp_path):
    report = run_against_reference(replace(built_example, overwrite=True), backend, tmp_path)
    assert_parity(report)


def _imported_examples() -> list[str]:
    """Examples built from a saved Spark ML pipeline (their build module names its folder)."""
    return [
        n
        for n in example_names()
        if getattr(importlib.import_module(f"examples.{n}.build"), "LEGACY_PIPELINE", None)
    ]


@pytest.mark.parametrize("built_example", _imported_examples(), indirect=True)
def test_imported_example_matches_its_original_pipeline_on_ray(built_example, engines, tmp_path):
    """`make parity` shows legacy vs Ray: the original PipelineModel is the side Ray is judged against."""
    from common.parity.runner import run_parity

    report, _, runs = run_parity(replace(built_example, overwrite=True), tmp_path, backends=["ray"])
    assert set(runs) == {"reference", "ray", "legacy"} and report.reference == "legacy"
    assert_parity(report)
