"""``batch-predict import-pipeline``: what it refuses, in one line, and that it then writes nothing.

The pipelines are real: fitted and saved by Spark (a Word2Vec stage, a custom Python Transformer,
a StringIndexer that would drop rows), then imported through the CLI in this process.
"""

from __future__ import annotations

import json

import pytest
from pyspark.ml import Transformer
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from tests.support import run_cli

pytestmark = pytest.mark.spark


class Shout(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """A custom Python stage, as teams write them: upper-cases the text column."""

    def _transform(self, dataset):
        from pyspark.sql import functions as F

        return dataset.withColumn("text", F.upper("text"))


@pytest.fixture(scope="module")
def saved(spark, tmp_path_factory):
    """Fitted pipelines, saved: name -> (folder, the stage the importer must name)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import SQLTransformer, StringIndexer, VectorAssembler, Word2Vec
    from pyspark.sql import functions as F

    root = tmp_path_factory.mktemp("import_errors")
    df = spark.createDataFrame(
        [(0, "a b c", "x", 1.0, 0.0), (1, "b c d", "y", 2.0, 1.0), (2, "c d a", "x", 0.5, 1.0)],
        "id long, text string, cat string, amount double, label double",
    ).withColumn("words", F.split("text", " "))
    model = [
        VectorAssembler(inputCols=["amount", "cat_idx"], outputCol="features"),
        LogisticRegression(featuresCol="features", labelCol="label", maxIter=3),
    ]
    # The importer refuses the first stage, so the refused pipelines need nothing after it.
    stages = {
        "word2vec": [
            Word2Vec(inputCol="words", outputCol="embedding", vectorSize=3, minCount=1, maxIter=1, seed=1)
        ],
        "python": [Shout()],
        "skip": [StringIndexer(inputCol="cat", outputCol="cat_idx", handleInvalid="skip")],
        "sql_where": [
            SQLTransformer(statement="SELECT *, amount * 2 AS double_amount FROM __THIS__ WHERE amount > 1")
        ],
        "good": [StringIndexer(inputCol="cat", outputCol="cat_idx", handleInvalid="keep"), *model],
    }
    out = {}
    for name, pipeline_stages in stages.items():
        fitted = Pipeline(stages=pipeline_stages).fit(df)
        fitted.write().save(str(root / name))
        out[name] = (root / name, fitted.stages[0].uid)
    return out


def _assert_refused(code, err, bundle, *needles):
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert not bundle.exists(), "a refused import wrote the bundle"
    assert not list(bundle.parent.glob(f".{bundle.name}.*")), "a refused import left a staging folder"


def test_an_unsupported_stage_is_one_line_naming_uid_and_class(saved, tmp_path, capsys):
    folder, uid = saved["word2vec"]
    code, err = run_cli(capsys, "import-pipeline", str(folder), str(tmp_path / "bundle"))
    _assert_refused(code, err, tmp_path / "bundle", uid, "Word2VecModel", "supported: Binarizer, Bucketizer")


def test_a_custom_python_transformer_is_refused_by_its_class(saved, tmp_path, capsys):
    folder, uid = saved["python"]
    code, err = run_cli(capsys, "import-pipeline", str(folder), str(tmp_path / "bundle"))
    _assert_refused(code, err, tmp_path / "bundle", uid, "Shout", "is not supported")


def test_an_unsupported_parameter_names_stage_class_and_parameter(saved, tmp_path, capsys):
    folder, uid = saved["skip"]
    code, err = run_cli(capsys, "import-pipeline", str(folder), str(tmp_path / "bundle"))
    _assert_refused(
        code,
        err,
        tmp_path / "bundle",
        uid,
        "StringIndexerModel",
        "handleInvalid = 'skip'",
        "drops those rows",
    )


def test_a_sql_transformer_that_filters_rows_is_refused_with_the_reason(saved, tmp_path, capsys):
    folder, uid = saved["sql_where"]
    code, err = run_cli(capsys, "import-pipeline", str(folder), str(tmp_path / "bundle"))
    _assert_refused(
        code,
        err,
        tmp_path / "bundle",
        uid,
        "SQLTransformer",
        "parameter statement",
        "it has WHERE",
        "SELECT *, <expr> AS <name>",
    )


def test_an_existing_bundle_is_replaced_only_with_overwrite(saved, tmp_path, capsys):
    folder, uid = saved["good"]
    bundle = tmp_path / "bundle"
    assert run_cli(capsys, "import-pipeline", str(folder), str(bundle)) == (0, "")
    report = json.loads((bundle / "import_report.json").read_text())
    assert [s["uid"] for s in report["stages"]][0] == uid
    assert [s["class"].rsplit(".", 1)[-1] for s in report["stages"]] == [
        "StringIndexerModel",
        "VectorAssembler",
        "LogisticRegressionModel",
    ]
    assert (
        "legacy_pipeline" in (bundle / "bundle.toml").read_text() and (bundle / "import_report.md").is_file()
    )
    code, err = run_cli(capsys, "import-pipeline", str(folder), str(bundle))
    assert code == 2 and "already exists" in err and len(err.splitlines()) == 1
    assert run_cli(capsys, "import-pipeline", str(folder), str(bundle), "--overwrite") == (0, "")
    assert not list(tmp_path.glob(".bundle.*"))
