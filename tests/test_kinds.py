"""The xgboost, lightgbm, onnx and transformers kinds on Spark, Ray and the reference, each against
its library's own in-process prediction; batch invariance; bad artefacts through the CLI."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from common.cli import main
from common.model.predictor import Predictor
from common.run.runner import run_job
from common.spec.bundle import load_bundle
from common.spec.job import load_job
from tests.kind_bundles import BUILDERS, FEATURES, kinds_input
from tests.support import read_output

ROWS = 24
JOB = """\
[job]
key = "id"
[input]
path = "input.parquet"
[output]
path = "out"
passthrough = ["id"]
[model]
bundle = "{bundle}"
[ray]
concurrency = 1
"""


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Path]:
    """One job per bundle over the same input; returns name -> job file."""
    root = tmp_path_factory.mktemp("kinds")
    pq.write_table(kinds_input(ROWS), root / "input.parquet")
    jobs = {}
    for name, build in BUILDERS.items():
        build(root / name)
        jobs[name] = root / f"{name}.toml"
        jobs[name].write_text(JOB.format(bundle=name))
    return jobs


def features(table: pa.Table, dtype=np.float32) -> np.ndarray:
    """The feature matrix the libraries get (the xgboost bundle's f0 transform is the identity)."""
    columns = [table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in FEATURES]
    return np.column_stack(columns).astype(dtype)


def library_outputs(name: str, bundle: Path, table: pa.Table) -> dict[str, list]:
    """What each library itself predicts for these rows: the whole input at once for the tabular
    kinds; each text alone for transformers (so batching cannot be what makes them agree)."""
    if name == "xgboost":
        import xgboost

        booster = xgboost.Booster(model_file=str(bundle / "model.json"))
        matrix = xgboost.DMatrix(features(table), missing=np.nan, feature_names=booster.feature_names)
        return {f"p{i}": list(col) for i, col in enumerate(booster.predict(matrix).T)}
    if name == "lightgbm":
        import lightgbm

        return {
            "raw": list(
                lightgbm.Booster(model_file=str(bundle / "model.txt")).predict(
                    features(table, np.float64), raw_score=True
                )
            )
        }
    if name == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
        probabilities, label = session.run(None, {"features": features(table)})
        return {"probabilities": [list(p) for p in probabilities], "label": list(label)}
    return _transformers_alone(name, bundle / "hf", table)


def _transformers_alone(name: str, folder: Path, table: pa.Table) -> dict[str, list]:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    out: dict[str, list] = {}
    with torch.inference_mode():
        if name == "classification":
            model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
            for text in table.column("text").to_pylist():
                if text is None:
                    for key in ("label", "score", "probabilities"):
                        out.setdefault(key, []).append(None)
                    continue
                p = (
                    model(**tokenizer(text, truncation=True, max_length=24, return_tensors="pt"))
                    .logits.double()
                    .softmax(-1)[0]
                )
                out.setdefault("label", []).append(model.config.id2label[int(p.argmax())])
                out.setdefault("score", []).append(float(p.max()))
                out.setdefault("probabilities", []).append(p.tolist())
        elif name == "embedding":
            model = transformers.AutoModel.from_pretrained(folder).eval()
            for text in table.column("text").to_pylist():
                enc = (
                    None
                    if text is None
                    else tokenizer(text, truncation=True, max_length=24, return_tensors="pt")
                )
                out.setdefault("embedding", []).append(
                    None if enc is None else model(**enc).last_hidden_state.double()[0].mean(0).tolist()
                )
        else:
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64).eval()
            for prompt in table.column("prompt").to_pylist():
                if prompt is None:
                    out.setdefault("generated_text", []).append(None)
                    out.setdefault("generated_tokens", []).append(None)
                    continue
                enc = tokenizer(prompt, truncation=True, max_length=16, return_tensors="pt")
                new = model.generate(**enc, max_new_tokens=6, do_sample=False)[
                    0, enc["input_ids"].shape[1] :
                ].tolist()
                count = next((i + 1 for i, t in enumerate(new) if t == tokenizer.eos_token_id), len(new))
                out.setdefault("generated_text", []).append(
                    tokenizer.decode(new[:count], skip_special_tokens=True)
                )
                out.setdefault("generated_tokens", []).append(count)
    return out


EXACT = {"xgboost", "lightgbm", "generation"}
FLOAT_TOLERANCE = {"onnx": 1e-6, "classification": 1e-6, "embedding": 1e-6}


def assert_matches(got: dict[str, list], want: dict[str, list], name: str) -> None:
    for column, expected in want.items():
        actual = got[column]
        if name in EXACT or column in ("label", "generated_text", "generated_tokens"):
            assert (
                actual
                == [
                    None if v is None else type(a)(v) if a is not None else v
                    for a, v in zip(actual, expected, strict=True)
                ]
                or (np.asarray(actual, dtype=object) == np.asarray(expected, dtype=object)).all()
            ), f"{name}.{column}"
            continue
        for a, e in zip(actual, expected, strict=True):
            assert (a is None) == (e is None), f"{name}.{column}: null mismatch"
            if a is not None:
                np.testing.assert_allclose(
                    np.asarray(a, dtype=np.float64),
                    np.asarray(e, dtype=np.float64),
                    atol=FLOAT_TOLERANCE[name],
                    rtol=0,
                    err_msg=f"{name}.{column}",
                )


@pytest.mark.parametrize("name", list(BUILDERS))
def test_kind_matches_its_library_on_every_backend(name, kinds, engines, tmp_path):
    """Spark, Ray and the reference each give what the library gives; XGBoost, LightGBM, ONNX and
    generated text are the same bits on all three."""
    job = load_job(kinds[name])
    table = pq.read_table(kinds[name].parent / "input.parquet")
    want = library_outputs(name, kinds[name].parent / name, table)
    outputs = {}
    for backend in ("reference", "spark", "ray"):
        run_job(replace(job, output_path=tmp_path / backend), backend)
        outputs[backend] = read_output(tmp_path / backend)
        assert outputs[backend].column("id").to_pylist() == list(range(ROWS))
        assert_matches(outputs[backend].to_pydict(), want, name)
    if name not in ("classification", "embedding"):
        assert outputs["spark"].equals(outputs["reference"]) and outputs["ray"].equals(outputs["reference"])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_rows_output_does_not_depend_on_its_batch(name, kinds):
    """Batches of 1, 3 and all rows give the same outputs (float32 transformer scores and
    embeddings within 1e-6: padding to another width rounds differently; labels and text exact)."""
    bundle = load_bundle(kinds[name].parent / name)
    table = pq.read_table(kinds[name].parent / "input.parquet")
    predictor = Predictor(bundle, passthrough=["id"])
    whole = predictor.predict(table).to_pydict()
    for size in (1, 3):
        parts = pa.concat_tables(
            predictor.predict(table.slice(i, size)) for i in range(0, ROWS, size)
        ).to_pydict()
        if name in ("classification", "embedding"):
            assert_matches(parts, {k: v for k, v in whole.items() if k != "id"}, name)
        else:
            assert parts == whole, f"{name}: batches of {size} differ from one batch"


def _corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _edit_toml(folder: Path, old: str, new: str) -> None:
    spec = folder / "bundle.toml"
    assert old in spec.read_text()
    spec.write_text(spec.read_text().replace(old, new))


def _as_generation(folder: Path) -> None:
    """The BERT classifier's bundle asking for text generation, with generation's outputs."""
    _edit_toml(folder, "text-classification", "text-generation")
    _edit_toml(
        folder,
        'label = "string"\nscore = "float32"\nprobabilities = "list<float32>"',
        'generated_text = "string"',
    )
    _edit_toml(folder, "max_length = 24", "max_new_tokens = 4")


def _prepend(folder: Path, line: str) -> None:
    spec = folder / "bundle.toml"
    spec.write_text(line + "\n" + spec.read_text())


BAD = {
    "task-on-another-kind": (
        "xgboost",
        lambda b: _prepend(b, 'task = "text-classification"'),
        ['field "task"', "no task"],
    ),
    "xgboost-corrupt": ("xgboost", lambda b: _corrupt(b / "model.json"), ["artifact", "model.json"]),
    "xgboost-feature-names": (
        "xgboost",
        lambda b: _edit_toml(b, '"f1", "f2"', '"f2", "f1"'),
        ["features", "position 1", "model 'f1', bundle 'f2'"],
    ),
    "xgboost-class-count": (
        "xgboost",
        lambda b: _edit_toml(b, 'p2 = "float32"', ""),
        ["outputs", "3 column", "softprob"],
    ),
    "lightgbm-truncated": ("lightgbm", lambda b: _corrupt(b / "model.txt"), ["artifact", "truncated"]),
    "onnx-corrupt": ("onnx", lambda b: _corrupt(b / "model.onnx"), ["artifact", "model.onnx"]),
    "onnx-unknown-output": (
        "onnx",
        lambda b: _edit_toml(b, '"label"]', '"labels"]'),
        ["options.outputs", "labels"],
    ),
    "transformers-wrong-task": (
        "classification",
        lambda b: _as_generation(b),
        ["task", "BertForSequenceClassification"],
    ),
    "transformers-corrupt-weights": (
        "classification",
        lambda b: _corrupt(b / "hf" / "model.safetensors"),
        ["artifact", "model.safetensors"],
    ),
    "transformers-embedding-size": (
        "embedding",
        lambda b: _edit_toml(b, "dimensions = 32", "dimensions = 64"),
        ["options.dimensions", "32"],
    ),
    "transformers-sampling": (
        "generation",
        lambda b: (b / "hf" / "generation_config.json").write_text(
            '{"do_sample": true, "temperature": 0.7, "max_new_tokens": 6}'
        ),
        ["do_sample", "greedy"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_artefact_is_one_line_exit_2_nothing_published(case, kinds, tmp_path, capsys):
    name, damage, needles = BAD[case]
    shutil.copytree(kinds[name].parent / name, tmp_path / name)
    shutil.copy(kinds[name].parent / "input.parquet", tmp_path / "input.parquet")
    (tmp_path / "job.toml").write_text(JOB.format(bundle=name))
    damage(tmp_path / name)
    code = main(["run", str(tmp_path / "job.toml"), "--backend", "reference"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"bundle {tmp_path / name}" in err, err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "out").exists()


def _has_cuda_build(kind: str) -> bool:
    if kind == "xgboost":
        import xgboost

        return bool(xgboost.build_info().get("USE_CUDA"))
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.parametrize("kind", ["xgboost", "onnx"])
def test_cuda_replica_with_a_cpu_only_library_warns_or_fails(kind, kinds):
    """A CUDA replica with the CPU wheel (xgboost-cpu, onnxruntime): ``device = "auto"`` runs on
    the CPU with a warning and reports cpu; ``device = "cuda"`` is a BundleError naming the fix."""
    from common.errors import BundleError
    from common.model.kinds import handler_for

    if _has_cuda_build(kind):
        pytest.skip(f"this {kind} build has CUDA")
    bundle = load_bundle(kinds[kind].parent / kind)
    with pytest.warns(UserWarning, match="running on the CPU"):
        assert handler_for(bundle, "cuda:0").device == "cpu"
    with pytest.raises(
        BundleError, match='field "device": "cuda" but the installed .* cannot use CUDA .*MODEL_EXTRAS=gpu'
    ):
        handler_for(replace(bundle, device="cuda"), "cuda:0")
