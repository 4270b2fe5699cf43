"""Units of the rollout work (issue 15) that need no engine: output-path overlap, chunk plans and
the chunk manifest, certificates against real bundles and real comparisons, progress lines and
the fleet page. The engine-backed contract tests are in ``tests/test_rollout.py``."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import OutputError
from common.run.chunks import ChunkManifest, plan_chunks
from common.run.path_safety import check_output_paths
from common.run.progress import Progress
from tests.support import make_job

# ---- output-path safety ----------------------------------------------------------------------------


def test_output_overlapping_input_or_bundle_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.parquet").write_bytes(b"x")
    bundle = tmp_path / "models" / "bundle"
    bundle.mkdir(parents=True)
    file_input = data / "input.parquet"
    refused = {
        "is the input": (file_input, file_input),
        "contains the input": (data, file_input),
        "lies inside the input folder": (data / "out", data),
        "contains the model bundle": (tmp_path / "models", tmp_path / "data"),
        "lies inside the model bundle": (bundle / "out", file_input),
    }
    for needle, (output, source) in refused.items():
        with pytest.raises(OutputError, match=needle):
            check_output_paths(output, source, bundle)
    (tmp_path / "link").symlink_to(data)
    with pytest.raises(OutputError, match="contains the input"):
        check_output_paths(tmp_path / "link", file_input, bundle)
    check_output_paths(data / "out", file_input, bundle)  # beside an input file: fine
    check_output_paths(tmp_path / "out", data, bundle)


# ---- chunks ----------------------------------------------------------------------------------------


def _files(folder: Path, sizes: list[int], row_group: int = 1000) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files, start = [], 0
    for i, rows in enumerate(sizes):
        path = folder / f"part-{i:03d}.parquet"
        pq.write_table(
            pa.table({"id": pa.array(range(start, start + rows), pa.int64())}), path, row_group_size=row_group
        )
        files.append(path)
        start += rows
    return files


def test_chunk_plans(tmp_path):
    few = _files(tmp_path / "few", [10, 20, 30])
    assert [c.rows for c in plan_chunks(few, "parquet")] == [60]  # small runs: one chunk
    assert [c.rows for c in plan_chunks(few, "parquet", min_rows=1)] == [10, 20, 30]  # one per file
    many = _files(tmp_path / "many", [10] * 25)
    plan = plan_chunks(many, "parquet", min_rows=1)
    assert 8 <= len(plan) <= 13 and sum(c.rows for c in plan) == 250
    assert all(p.row_groups is None for c in plan for p in c.parts)  # whole files by default
    big = _files(tmp_path / "big", [100, 5], row_group=10)
    plan = plan_chunks(big, "parquet", chunk_rows=30)
    assert [c.rows for c in plan] == [30, 30, 30, 15]  # the last row group and the small file together
    assert plan[1].parts[0].row_groups == (3, 4, 5)
    assert [p.row_groups for p in plan[3].parts] == [(9,), None]
    # every row exactly once across the chunks' row groups
    ids = []
    for chunk in plan:
        for part in chunk.parts:
            pf = pq.ParquetFile(part.file)
            groups = part.row_groups if part.row_groups is not None else range(pf.num_row_groups)
            ids += pf.read_row_groups(list(groups)).column("id").to_pylist()
    assert sorted(ids) == list(range(105)) and len(ids) == 105


def test_chunk_manifest_commits_and_discards_unfinished(tmp_path):
    chunks = plan_chunks(_files(tmp_path / "in", [5, 5, 5]), "parquet", min_rows=1)
    stage = tmp_path / "stage"
    manifest = ChunkManifest.create(stage, {"backend": "reference"}, chunks)
    for chunk in chunks[:2]:
        written = manifest.writing_dir(chunk)
        written.mkdir()
        pq.write_table(pa.table({"id": [chunk.index]}), written / "part-0.parquet")
        manifest.commit(chunk)
    leftover = manifest.writing_dir(chunks[2])  # killed while writing the third
    leftover.mkdir()
    (leftover / "part-0.parquet").write_bytes(b"half")
    (stage / "chunk-00002-part-0.parquet").write_bytes(b"moved but not recorded")
    again = ChunkManifest.load(stage)
    assert sorted(again.done) == [0, 1] and [c.index for c in again.pending()] == [2]
    assert again.discard_unfinished() == 2
    assert sorted(p.name for p in stage.iterdir()) == [
        "_chunks.json",
        "chunk-00000-part-0.parquet",
        "chunk-00001-part-0.parquet",
    ]


# ---- progress ----------------------------------------------------------------------------------------


def test_progress_plain_lines_bar_and_quiet(tmp_path):
    plain = io.StringIO()
    with Progress(1000, "ray", stream=plain, interval=0.05) as progress:
        progress.advance(250)  # a committed chunk
        progress.watch(tmp_path)  # the running chunk: its finished files count, a half-written one not
        pq.write_table(pa.table({"id": list(range(100))}), tmp_path / "part-0.parquet")
        (tmp_path / "part-1.parquet").write_bytes(b"PAR1 half written")
        time.sleep(0.2)
    lines = plain.getvalue().splitlines()
    assert lines and all(line.startswith("progress: ray: ") for line in lines)
    assert lines[-1].startswith("progress: ray: 350 of 1,000 rows (35%), ") and "rows/s, ETA " in lines[-1]
    bar = io.StringIO()
    with Progress(1000, "spark", stream=bar, terminal=True, interval=0.05) as progress:
        time.sleep(1.3)  # the bar appears after a second
        progress.advance(1000)
    assert "spark" in bar.getvalue() and "1.00k/1.00k" in bar.getvalue()
    quiet = io.StringIO()
    with Progress(1000, "ray", stream=quiet, enabled=False, interval=0.01) as progress:
        progress.advance(5)
        time.sleep(0.05)
    assert quiet.getvalue() == ""


# ---- certificates --------------------------------------------------------------------------------------


def _compared(tmp_path: Path, differ: bool):
    from common.parity.compare import compare_outputs
    from common.spec.parity import ParitySettings

    table = pa.table({"id": pa.array(range(20), pa.int64()), "score": [i / 7 for i in range(20)]})
    sides = {}
    for name in ("reference", "spark", "ray"):
        folder = tmp_path / "sides" / name
        folder.mkdir(parents=True)
        side = table
        if differ and name == "ray":
            side = table.set_column(
                1, "score", pa.array([v + 1e-3 for v in table.column("score").to_pylist()])
            )
        pq.write_table(side, folder / "part.parquet")
        sides[name] = folder
    return compare_outputs(sides, ["id"], ParitySettings(), reference="reference")


def test_certificate_follows_bundle_settings_and_verdict(tmp_path):
    from common.rollout.certificate import check_certificate, choose_backend, fingerprint, write_certificate
    from common.spec.job import load_job

    job = load_job(make_job(tmp_path / "job", rows=20))
    backend, reason = choose_backend(job)
    bundle = fingerprint(job).bundle_hash[:6]
    assert (backend, reason.split(" (")[0]) == (
        "spark",
        f"auto -> spark: no passing parity certificate for bundle {bundle}",
    )
    runs = {"reference": None, "spark": None, "ray": None}
    path = write_certificate(job, fingerprint(job), report=_compared(tmp_path / "a", differ=False), runs=runs)
    data = json.loads(path.read_text())
    assert path.name == "job.toml.parity.json" and data["verdict"] == "pass" and data["rows_compared"] == 20
    assert {"pyspark", "ray", "pyarrow", "scikit-learn"} <= set(data["versions"])
    assert "input.parquet" not in json.dumps(data["settings"])  # no paths in what is hashed
    assert choose_backend(job)[0] == "ray"
    # paths and replica counts do not matter; a setting that can change results does
    text = job.path.read_text()
    job.path.write_text(
        text.replace('path = "out"', 'path = "elsewhere"').replace("concurrency = 1", "concurrency = 2")
    )
    assert check_certificate(load_job(job.path)).certified
    job.path.write_text(text + '\n[spark]\nudf = "pandas"\n')
    status = check_certificate(load_job(job.path))
    assert not status.certified and status.reason.endswith("settings changed since certification: spark.udf")
    job.path.write_text(text)
    # a retrained model rewrites the bytes of a file the bundle already has; a new file counts too
    bundle_toml = job.bundle_path / "bundle.toml"
    original = bundle_toml.read_bytes()
    bundle_toml.write_bytes(original + b"\n# retrained\n")
    status = check_certificate(job)
    assert not status.certified and f"the certificate is for bundle {bundle}" in status.reason
    bundle_toml.write_bytes(original)
    assert check_certificate(job).certified
    (job.bundle_path / "notes.txt").write_text("retrained")
    status = check_certificate(job)
    assert not status.certified and f"the certificate is for bundle {bundle}" in status.reason
    current = fingerprint(job)
    write_certificate(job, current, report=_compared(tmp_path / "b", differ=True), runs=runs)
    status = check_certificate(job)
    assert (
        not status.certified and "failed: reference vs ray: column score differs in 20 rows" in status.reason
    )
    write_certificate(job, current, error="input x: no such file")
    assert "could not finish: input x: no such file" in check_certificate(job).reason
    # a library upgrade voids it too: the certificate names the version it was proven with
    path = write_certificate(job, current, report=_compared(tmp_path / "c", differ=False), runs=runs)
    assert check_certificate(job).certified
    data = json.loads(path.read_text())
    proven = data["versions"]["pyarrow"]
    data["versions"]["pyarrow"] = "0.0.1"
    path.write_text(json.dumps(data))
    status = check_certificate(job)
    assert not status.certified and status.reason.endswith(
        f"versions changed since certification: pyarrow 0.0.1 -> {proven}"
    )


def test_certificate_records_each_kinds_libraries_and_torch_for_transforms(tmp_path):
    """Every registered kind declares the libraries that can change its results, and the
    certificate records them; torch counts for any bundle with transforms, so a torch upgrade voids
    the certificate of a bundle whose transforms run in torch, whatever its kind."""
    from importlib import metadata

    from common.model.kinds import kind_libraries
    from common.rollout.certificate import check_certificate, fingerprint, library_versions, write_certificate
    from common.spec.bundle import load_bundle
    from common.spec.job import load_job
    from common.spec.kinds import kind_names

    def installed(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    job = load_job(make_job(tmp_path / "job", rows=20))
    bundle = load_bundle(job.bundle_path)
    assert bundle.kind == "sklearn" and bundle.transforms
    for kind in kind_names():
        libraries = kind_libraries(kind)
        found = {name: installed(name) for name in libraries if installed(name)}
        assert found, f"kind {kind}: none of its libraries {libraries} is an installed distribution"
        recorded = library_versions(replace(bundle, kind=kind, transforms=()))
        assert found.items() <= recorded.items(), kind
    assert "torch" not in library_versions(replace(bundle, transforms=()))  # sklearn alone: no torch
    assert library_versions(bundle)["torch"] == installed("torch")

    runs = {"reference": None, "spark": None, "ray": None}
    path = write_certificate(job, fingerprint(job), report=_compared(tmp_path / "a", differ=False), runs=runs)
    assert check_certificate(job).certified
    data = json.loads(path.read_text())
    data["versions"]["torch"] = "0.0.1"
    path.write_text(json.dumps(data))
    status = check_certificate(job)
    assert not status.certified and status.reason.endswith(
        f"versions changed since certification: torch 0.0.1 -> {installed('torch')}"
    )


def test_certificate_dir_keeps_certificates_out_of_the_jobs_folder(tmp_path):
    """``[parity] certificate_dir`` (relative to the job's folder) holds the certificate instead of
    the job's folder (the team's repository); moving it there voids nothing, and two jobs of one
    file name in two folders keep one certificate each."""
    from common.rollout.certificate import check_certificate, fingerprint, write_certificate
    from common.spec.job import load_job

    runs = {"reference": None, "spark": None, "ray": None}
    report = _compared(tmp_path / "cmp", differ=False)
    paths = []
    for team in ("fraud", "churn"):
        job_file = make_job(tmp_path / "repo" / team, rows=20)
        before = load_job(job_file)
        job_file.write_text(job_file.read_text() + '\n[parity]\ncertificate_dir = "../../certs"\n')
        job = load_job(job_file)
        assert fingerprint(job).settings_hash == fingerprint(before).settings_hash
        path = write_certificate(job, fingerprint(job), report=report, runs=runs)
        assert (
            path.parent == (tmp_path / "certs").resolve()
            or path.parent.resolve() == (tmp_path / "certs").resolve()
        )
        assert path.name.startswith("job.toml.") and path.name.endswith(".parity.json")
        assert not list(job_file.parent.glob("*.parity.json"))
        assert check_certificate(job).certified and check_certificate(job).path == path
        assert not check_certificate(before).certified  # no certificate beside the job file
        paths.append(path)
    assert paths[0] != paths[1] and all(p.exists() for p in paths)


def test_fleet_page_is_self_contained(tmp_path):
    from common.parity.report_data import DIFFERS, WITHIN_TOLERANCE
    from common.rollout.certificate import ERROR
    from common.rollout.fleet import FleetResult, FleetRow, write_fleet

    rows = [
        FleetRow(
            "a",
            "/jobs/a.toml",
            WITHIN_TOLERANCE,
            rows=10,
            engines={
                "spark": {"seconds": 2.0, "rows_per_second": 5.0},
                "ray": {"seconds": 1.0, "rows_per_second": 10.0},
            },
            ray_speedup=2.0,
            report="a/parity.html",
        ),
        FleetRow(
            "b<x>",
            "/jobs/b.toml",
            DIFFERS,
            rows=10,
            differing_columns=[{"column": "score", "pair": "spark vs ray", "rows": 3, "verdict": "DIFFERS"}],
            report="b_x/parity.html",
        ),
        FleetRow("c", "/jobs/c.toml", ERROR, error="input /x: no such file or folder"),
    ]
    paths = write_fleet(rows, tmp_path)
    page = paths["html"].read_text()
    assert "b&lt;x&gt;" in page and "score: 3 (spark vs ray)" in page and "2.00x" in page
    assert "href='a/parity.html'" in page and "no such file" in page
    assert "http" not in page and "<script" not in page
    assert FleetResult(rows[:1], paths).exit_code == 0 and FleetResult(rows[:2], paths).exit_code == 1
    table = FleetResult(rows, paths).summary_lines()
    assert table[2].split()[:2] == ["b<x>", "DIFFERS"] and "score (spark vs ray) 3" in table[2]
    assert table[-1] == f"fleet report: {paths['html']}"
    long_name = replace(rows[0], job="generation_transformers_nightly")  # names are shown whole
    lines = FleetResult([long_name, rows[1]], paths).summary_lines()
    assert lines[1].split()[0] == "generation_transformers_nightly"
    assert lines[0].index("verdict") == lines[1].index("within") == lines[2].index("DIFFERS")
    data = json.loads(paths["json"].read_text())
    assert data["exit_code"] == 2 and [j["verdict"] for j in data["jobs"]] == [
        WITHIN_TOLERANCE,
        DIFFERS,
        ERROR,
    ]
