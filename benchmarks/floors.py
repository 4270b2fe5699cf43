"""The smallest hand-written pipelines that do a job's work, each the floor of its engine.

    python -m benchmarks.floors {ray,spark} --input DIR --output DIR --bundle DIR

What a user writes by hand with each engine's default settings, and nothing else: Ray,
``ray.init`` + ``read_parquet`` + ``map_batches`` + ``write_parquet``; Spark, a ``SparkSession`` +
``mapInArrow`` + ``write.parquet``. The model runs through the same ``Predictor`` (transforms and
model in the worker) so that only the engine's own cost differs from our executors. Run in a fresh
process (``benchmarks.phases``), start to exit is what a one-job script costs on this machine.
"""

from __future__ import annotations

import argparse
import sys


def _predict_table(bundle_path: str, passthrough: tuple[str, ...]):
    """A function from an Arrow table to its predictions; the model loads once per process."""
    cache = {}

    def predict(table):
        from common.model.predictor import Predictor
        from common.spec.bundle import load_bundle

        if "predictor" not in cache:
            cache["predictor"] = Predictor(
                load_bundle(bundle_path), run_transforms=True, passthrough=passthrough
            )
        return cache["predictor"].predict(table)

    return predict


def ray_floor(
    input_dir: str, output_dir: str, bundle_path: str, passthrough: tuple[str, ...], batch_size: int
) -> None:
    import ray

    ray.init()
    predict = _predict_table(bundle_path, passthrough)
    ds = ray.data.read_parquet(input_dir)
    ds = ds.map_batches(predict, batch_size=batch_size, batch_format="pyarrow")
    ds.write_parquet(output_dir)


def spark_floor(
    input_dir: str,
    output_dir: str,
    bundle_path: str,
    passthrough: tuple[str, ...],
    batch_size: int,
    output_schema,
) -> None:
    from pyspark.sql import SparkSession
    from pyspark.sql.pandas.types import from_arrow_schema

    spark = SparkSession.builder.getOrCreate()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    predict = _predict_table(bundle_path, passthrough)

    def predict_batches(batches):
        import pyarrow as pa

        for batch in batches:
            yield from predict(pa.Table.from_batches([batch])).to_batches()

    schema = from_arrow_schema(output_schema, prefer_timestamp_ntz=True)
    spark.read.parquet(input_dir).mapInArrow(predict_batches, schema).write.parquet(output_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("engine", choices=("ray", "spark"))
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument(
        "--passthrough", default="id", help="comma-separated input columns copied to the output"
    )
    args = parser.parse_args(argv)
    from common.spec.bundle import load_bundle  # the bundle's batch size and declared outputs, no model

    bundle = load_bundle(args.bundle)
    passthrough = tuple(c for c in args.passthrough.split(",") if c)
    if args.engine == "ray":
        ray_floor(args.input, args.output, args.bundle, passthrough, bundle.batch_size)
    else:
        from pathlib import Path

        import pyarrow.parquet as pq

        from common.run.inputs import list_input_files

        first = list_input_files(Path(args.input), "parquet")[0]
        in_schema = pq.read_schema(first)
        out_schema = _output_schema(bundle, in_schema, passthrough)
        spark_floor(args.input, args.output, args.bundle, passthrough, bundle.batch_size, out_schema)
    return 0


def _output_schema(bundle, in_schema, passthrough):
    import pyarrow as pa

    return pa.schema(
        [in_schema.field(c) for c in passthrough] + [pa.field(n, t) for n, t in bundle.outputs.items()]
    )


if __name__ == "__main__":
    sys.exit(main())
