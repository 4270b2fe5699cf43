"""``batch-predict``: run a job on Spark or Ray, check parity between them, compare two outputs.

Exit codes: 0 success (parity within tolerance), 1 parity outside tolerance, 2 error. Errors print
one line naming the file, column or field at fault, and publish nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import EXIT_ERROR, EXIT_OK, EXIT_PARITY_FAILED, BatchPredictError
from common.run.signals import Terminated, signalled, stop_on_signals

if TYPE_CHECKING:
    from common.run.engines import EngineSession

# Only light modules above: the signal handlers go in before anything heavy is imported, so that a
# SIGTERM a moment after launch still exits 143 with its line (common.run.signals).

DESCRIPTION = """\
Batch prediction on Spark or Ray from one job file and one model bundle, and proof that the two
engines give the same answers.

commands:
  run JOB.toml --backend BACKEND            run a job; prints one summary line
  run JOB.toml JOB.toml ... --backend ray   run jobs on one engine started once; a line each
  run JOB.toml --backend spark --shadow ray also run Ray beside it and compare (one more line)
  run JOB.toml --resume                     finish a run that was killed, keeping its done chunks
  parity JOB.toml                           run Spark, Ray and the reference (and, for a bundle imported
                                            from a Spark ML pipeline, that pipeline), compare them all
  parity JOB.toml [JOB.toml ...] --report DIR   the same for a fleet of jobs, with one index page
  certificate JOB.toml                      whether the job's parity certificate holds, and why
  compare A B --key id                      compare two existing outputs (Parquet files or folders)
  import-pipeline PIPELINE BUNDLE           turn a saved Spark ML PipelineModel into a bundle

backends: {backends}

exit codes: 0 ok, 1 parity outside tolerance, 2 error (one line on stderr, nothing published),
130 Ctrl-C, 143 SIGTERM (nothing published; the engines this command started are stopped).
"""


class _OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other error (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from common.run.backends import ENV_VAR
    from common.spec.backends import choosable_names, engine_names

    parser = _OneLineParser(
        prog="batch-predict",
        description=DESCRIPTION.format(backends=", ".join(choosable_names())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run jobs on one backend",
        description="Run batch-prediction jobs, one after another on one engine started once.",
    )
    run.add_argument("jobs", nargs="+", metavar="JOB", help="job files (TOML)")
    run.add_argument(
        "--backend",
        choices=choosable_names(),
        default=None,
        help=f"executor to use; auto: ray when the job's parity certificate holds, else spark; "
        f"default: ${ENV_VAR}",
    )
    run.add_argument("--input", help="override [input] path (a Parquet/CSV file or folder)")
    run.add_argument("--output", help="override [output] path (a folder of Parquet)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    run.add_argument(
        "--shadow",
        choices=engine_names(),
        help="after publishing, also run this backend into <output>.shadow-<backend> and compare",
    )
    run.add_argument(
        "--shadow-strict", action="store_true", help="a differing (1) or failed (2) shadow sets the exit code"
    )
    run.add_argument(
        "--resume", action="store_true", help="keep the chunks a killed run of this output committed"
    )
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")

    parity = sub.add_parser(
        "parity",
        help="run Spark, Ray and the reference on the job's input and compare them",
        description="Run the job on Spark, Ray and the single-process reference, then compare the three "
        "outputs.",
    )
    parity.add_argument("job", nargs="+", help="the job file(s) (TOML)")
    parity.add_argument("--input", help="override [input] path (one job only)")
    parity.add_argument(
        "--out", help="folder for the three outputs and the reports (default: <output>-parity; one job only)"
    )
    parity.add_argument(
        "--report",
        help="fleet report folder: each job's outputs and reports in DIR/<job name>/, "
        "DIR/index.html and DIR/fleet.json with a row per job",
    )
    parity.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parity.add_argument(
        "--backends",
        default=",".join(engine_names()),
        help="comma-separated backends to compare with the reference (legacy joins them by itself "
        "when the bundle names a legacy_pipeline)",
    )

    certificate = sub.add_parser(
        "certificate",
        help="whether the job's parity certificate holds for its current bundle and settings",
        description="Print whether JOB is certified (a passing parity run for its current bundle, "
        "result settings and library versions) and why or why not. Exit 0 certified, 1 not.",
    )
    certificate.add_argument("job", help="the job file (TOML)")

    imported = sub.add_parser(
        "import-pipeline",
        help="turn a saved Spark ML PipelineModel into a bundle",
        description="Import a PipelineModel saved with model.write().save(dir) as a bundle: transforms for "
        "its feature stages, a spark_ml model for its predictor, legacy_pipeline naming the original, and "
        "import_report.md/.json. An unsupported stage or parameter is an error; nothing is written then.",
    )
    imported.add_argument("pipeline", help="the saved PipelineModel's folder")
    imported.add_argument("bundle", help="the bundle folder to write")
    imported.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")

    compare = sub.add_parser(
        "compare",
        help="compare two existing outputs",
        description="Compare two Parquet outputs matched on a key; tolerances come from --job's [parity] "
        "section or flags. Spark ML vector columns are compared as lists of doubles. A column on one side "
        "only is reported, and fails the comparison only when --columns names it.",
    )
    compare.add_argument("a", help="first output (Parquet file or folder)")
    compare.add_argument("b", help="second output (Parquet file or folder)")
    compare.add_argument("--key", required=True, help="key column(s), comma-separated")
    compare.add_argument("--names", default="a,b", help="names of the two sides in the report (default: a,b)")
    compare.add_argument("--job", help="take [parity] tolerances from this job file")
    compare.add_argument("--abs", type=float, help="default absolute tolerance for floats")
    compare.add_argument("--rel", type=float, help="default relative tolerance for floats")
    compare.add_argument("--ulps", type=int, help="default tolerance in units in the last place")
    compare.add_argument("--report", help="folder for parity.json and parity.html")
    compare.add_argument("--columns", help="compare only these columns (comma-separated), besides the key")
    compare.add_argument("--ignore", help="never compare these columns (comma-separated)")
    compare.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="compare column OLD (on the side that has it) as NEW; repeat or separate with commas",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    with stop_on_signals():
        try:
            return _main(argv)
        except (KeyboardInterrupt, Terminated) as exc:  # before the engines were set up
            return _stopped(exc)


def _main(argv: list[str] | None) -> int:
    from common.run.engines import EngineSession
    from common.run.leftovers import RunTag, reap_dead_runs

    args = build_parser().parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)
    reap_dead_runs()  # what a SIGKILLed run left running (common.run.leftovers)
    # Engines start once for all the command's jobs and stop before it exits, whatever ends it:
    # a child process left running would cost the next scheduled job its CPUs.
    with RunTag(), EngineSession() as engines:
        try:
            if args.command == "run":
                return _run(args, engines)
            if args.command == "parity":
                return _parity(args)
            if args.command == "certificate":
                return _certificate(args)
            if args.command == "import-pipeline":
                return _import_pipeline(args)
            return _compare(args)
        except (KeyboardInterrupt, Terminated) as exc:
            return _stopped(exc)
        except BatchPredictError as exc:
            if signalled():  # the error came of the signal, whose exception a library swallowed
                return _stopped(signalled())
            print(f"batch-predict: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except Exception as exc:  # an engine failure: still one line, and nothing published
            if signalled():
                return _stopped(signalled())
            if args.debug:
                raise
            print(f"batch-predict: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR


def _stopped(exc: BaseException) -> int:
    interrupted = isinstance(exc, KeyboardInterrupt)
    print(
        f"batch-predict: {'interrupted' if interrupted else 'terminated'}; nothing published", file=sys.stderr
    )
    return 128 + (signal.SIGINT if interrupted else signal.SIGTERM)


def _one_line(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first} (use --debug for the traceback)"


def _run(args, engines: EngineSession) -> int:
    """Each job in turn on one engine; with several, a job's error is its one line and the next
    job still runs (exit 2 if any failed)."""
    if len(args.jobs) == 1:
        return _run_one(args, args.jobs[0], engines)
    if args.input or args.output or args.shadow or args.resume:
        raise BatchPredictError("--input, --output, --shadow and --resume apply to one job at a time")
    status = EXIT_OK
    for path in args.jobs:
        try:
            code = _run_one(args, path, engines)
        except BatchPredictError as exc:
            print(f"batch-predict: error: {exc}", file=sys.stderr, flush=True)
            code = EXIT_ERROR
        except Exception as exc:
            if args.debug:
                raise
            print(f"batch-predict: error: {_one_line(exc)}", file=sys.stderr, flush=True)
            code = EXIT_ERROR
        status = max(status, code)
    return status


def _run_one(args, path: str, engines: EngineSession) -> int:
    from common.rollout.certificate import choose_backend
    from common.rollout.shadow import run_shadow
    from common.run.backends import ENV_VAR
    from common.run.runner import run_job
    from common.spec.backends import AUTO
    from common.spec.job import load_job

    job = load_job(path).with_paths(args.input, args.output)
    if args.overwrite:
        from dataclasses import replace

        job = replace(job, overwrite=True)
    backend, notes = args.backend or os.environ.get(ENV_VAR), ()
    if backend == AUTO:
        backend, reason = choose_backend(job)
        notes = (reason,)
    result = run_job(job, backend, resume=args.resume, progress=not args.quiet, engines=engines, notes=notes)
    print(result.summary(), flush=True)
    if args.shadow:
        shadow = run_shadow(job, result, args.shadow)
        print(shadow.line)
        return shadow.exit_code if args.shadow_strict else EXIT_OK
    return EXIT_OK


def _parity(args) -> int:
    from common.parity.report import format_summary
    from common.rollout.fleet import certified_parity, run_fleet
    from common.spec.job import load_job

    backends = [b for b in args.backends.split(",") if b]
    if args.report:
        if args.input or args.out:
            raise BatchPredictError("--input and --out are for one job; a fleet's outputs go under --report")
        fleet = run_fleet(args.job, Path(args.report), backends, progress=not args.quiet)
        print("\n".join(fleet.summary_lines()))
        return fleet.exit_code
    if len(args.job) > 1:
        raise BatchPredictError("several jobs need --report DIR (the fleet report folder)")
    job = load_job(args.job[0]).with_paths(args.input, None)
    out = Path(args.out) if args.out else job.output_path.with_name(job.output_path.name + "-parity")
    report, paths, _, certificate = certified_parity(job, out, backends, progress=not args.quiet)
    print(format_summary(report))
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    if certificate is not None:
        print(f"certificate: {certificate}")
    return EXIT_OK if report.ok else EXIT_PARITY_FAILED


def _certificate(args) -> int:
    from common.rollout.certificate import check_certificate
    from common.spec.job import load_job

    status = check_certificate(load_job(args.job))
    print(f"{args.job}: {'certified' if status.certified else 'not certified'}: {status.reason}")
    return EXIT_OK if status.certified else EXIT_PARITY_FAILED


def _import_pipeline(args) -> int:
    from common.spark_ml_import import import_pipeline

    print(import_pipeline(args.pipeline, args.bundle, overwrite=args.overwrite).summary())
    return EXIT_OK


def _compare(args) -> int:
    from common.parity.compare import ColumnChoice, compare_outputs
    from common.parity.report import format_summary, write_reports
    from common.spec.parity import ParitySettings, Tolerance

    names = [n.strip() for n in args.names.split(",")]
    if len(names) != 2 or len(set(names)) != 2:
        raise BatchPredictError("--names needs two different names, e.g. spark,ray")
    settings = ParitySettings()
    if args.job:
        from common.spec.job import load_job

        settings = load_job(args.job).parity
    if args.abs is not None or args.rel is not None or args.ulps is not None:
        from dataclasses import replace

        d = settings.default
        settings = replace(
            settings,
            default=Tolerance(
                abs=d.abs if args.abs is None else args.abs,
                rel=d.rel if args.rel is None else args.rel,
                ulps=d.ulps if args.ulps is None else args.ulps,
            ),
        )
    key = _names(args.key)
    choice = ColumnChoice(
        columns=tuple(_names(args.columns)) if args.columns is not None else None,
        ignore=tuple(_names(args.ignore or "")),
        rename=_renames(args.rename),
        one_sided_fails=False,
    )
    report = compare_outputs({names[0]: args.a, names[1]: args.b}, key, settings, choice=choice)
    print(format_summary(report))
    if args.report:
        paths = write_reports(report, Path(args.report))
        print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return EXIT_OK if report.ok else EXIT_PARITY_FAILED


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _renames(values: list[str]) -> dict[str, str]:
    renames = {}
    for item in (part for value in values for part in _names(value)):
        old, sep, new = (p.strip() for p in item.partition("="))
        if not (sep and old and new):
            raise BatchPredictError(f"--rename {item!r}: expected OLD=NEW")
        renames[old] = new
    return renames


if __name__ == "__main__":
    sys.exit(main())
