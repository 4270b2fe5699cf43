"""Output safety (issue 23 item 8): the four ways a bad-input hunt lost data with exit 0, and
``s3://`` published to a local folder named ``s3:``. Each case runs on every backend; each was
published (deleting files) by the code before this test.

A refusal is one line, exit 2, and every file under the test's folder unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from common.run.output import MANIFEST
from tests.support import make_job, run_cli


def tree_state(root: Path) -> dict[str, str]:
    """Every file and link under ``root``: its content hash (or link target)."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            state[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            state[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return state


def refused(capsys, job: Path, backend: str, *args: str) -> str:
    before = tree_state(job.parent.parent)
    code, err = run_cli(capsys, "run", str(job), "--backend", backend, *args)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert tree_state(job.parent.parent) == before, "a refused run changed files"
    return err


@pytest.fixture
def shared(tmp_path) -> Path:
    """Input and bundle in ``shared/``; jobs elsewhere point at them."""
    make_job(tmp_path / "shared", rows=40)
    return tmp_path / "shared"


def job_in(folder: Path, shared: Path, output: str, input_path: str | None = None) -> Path:
    """A job file in ``folder`` (with a notes file beside it) reading the shared input, overwrite on."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "NOTES.txt").write_text("my notes\n")
    text = (shared / "job.toml").read_text()
    text = text.replace('path = "input.parquet"', f'path = "{input_path or shared / "input.parquet"}"')
    text = text.replace('path = "out"', f'path = "{output}"\noverwrite = true')
    text = text.replace('bundle = "bundle"', f'bundle = "{shared / "bundle"}"')
    job = folder / "job.toml"
    job.write_text(text)
    return job


def test_empty_output_path_is_refused(any_backend, shared, tmp_path, capsys):
    """``path = ""`` resolved to the job's folder and deleted job.toml and NOTES.txt."""
    job = job_in(tmp_path / "job", shared, "")
    err = refused(capsys, job, any_backend)
    assert '[output] field "path": is empty' in err
    err = refused(capsys, job_in(tmp_path / "job", shared, "out"), any_backend, "--output", "")
    assert "--output: is empty" in err


def test_output_holding_the_job_file_is_refused(any_backend, shared, tmp_path, capsys):
    """An output equal to the job file's folder deleted the job's own files."""
    job = job_in(tmp_path / "job", shared, ".")
    assert "contains the job file" in refused(capsys, job, any_backend)
    job = job_in(tmp_path / "deep" / "job", shared, "..")
    assert "contains the job file" in refused(capsys, job, any_backend)


def test_output_holding_an_input_file_behind_a_link_is_refused(any_backend, shared, tmp_path, capsys):
    """The input folder holds a link to a file in a previous output; overwriting that output
    deleted the input file. Links are resolved both ways: also an output reached through a link."""
    previous = tmp_path / "previous"
    previous.mkdir()
    shutil.copy(shared / "input.parquet", previous / "part-0.parquet")
    manifest = {"rows_out": 40, "files": ["part-0.parquet"]}
    (previous / MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part-0.parquet").symlink_to(previous / "part-0.parquet")
    job = job_in(tmp_path / "job", shared, str(previous), input_path=str(tmp_path / "in"))
    err = refused(capsys, job, any_backend)
    assert f"holds the input file {previous / 'part-0.parquet'} (through the link" in err
    (tmp_path / "alias").symlink_to(previous)
    err = refused(capsys, job, any_backend, "--output", str(tmp_path / "alias"))
    assert "holds the input file" in err


def test_overwrite_replaces_only_an_output_of_ours(any_backend, shared, tmp_path, capsys):
    """An existing ``docs/`` holding thesis.tex was deleted by overwrite = true; now only a folder
    whose manifest lists every file in it is replaced, and a stranger in it is named."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("\\chapter{one}\n")
    job = job_in(tmp_path / "job", shared, str(docs))
    err = refused(capsys, job, any_backend)
    assert f"{docs / 'thesis.tex'} is not ours" in err

    out = tmp_path / "out"
    job = job_in(tmp_path / "job", shared, str(out))
    for _ in range(2):  # the second run replaces the first one's output
        code, err = run_cli(capsys, "run", str(job), "--backend", any_backend)
        assert code == 0, err
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert "_SUCCESS" not in listed and any(name.endswith(".parquet") for name in listed), listed
    (out / "sub").mkdir()
    (out / "sub" / "mine.txt").write_text("keep me")
    assert f"{out / 'sub' / 'mine.txt'} is not ours" in refused(capsys, job, any_backend)


@pytest.mark.parametrize(
    "field, value",
    [("output", "s3://my-bucket/scores/"), ("input", "s3://my-bucket/in/"), ("model", "gs://b/bundle")],
)
def test_uri_locations_are_refused_until_object_storage(any_backend, shared, tmp_path, capsys, field, value):
    """``s3://my-bucket/scores/`` was published to a local folder ``s3:/my-bucket/scores/``."""
    job = job_in(tmp_path / "job", shared, "out")
    text = job.read_text()
    if field == "output":
        text = text.replace('path = "out"', f'path = "{value}"')
    elif field == "input":
        text = text.replace(f'path = "{shared / "input.parquet"}"', f'path = "{value}"')
    else:
        text = text.replace(f'bundle = "{shared / "bundle"}"', f'bundle = "{value}"')
    job.write_text(text)
    err = refused(capsys, job, any_backend)
    assert f"{value!r}: URIs are not supported yet" in err
    assert not list(tmp_path.rglob("s3:*")) and not list(tmp_path.rglob("gs:*"))
