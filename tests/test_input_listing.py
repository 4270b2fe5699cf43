"""Files the input cannot read or classify are refused, naming them (issue 22, D6): each case
below gave "reconciled: N in = N out" and exit 0 with the entry's rows silently left out.

The listing is the driver's (``common.run.listing``), before any engine starts, and every backend
reads the list it returns; a symlinked folder is followed, as Spark follows it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import InputError
from common.run.inputs import inspect_input
from common.run.runner import run_job
from common.spec.job import load_job
from tests.support import make_job, read_output


def two_files(root: Path) -> Path:
    """``root/in`` with two 10-row Parquet files, one of them in ``sub/``."""
    (root / "in" / "sub").mkdir(parents=True)
    pq.write_table(pa.table({"id": list(range(10))}), root / "in" / "part-0.parquet")
    pq.write_table(pa.table({"id": list(range(10, 20))}), root / "in" / "sub" / "part-1.parquet")
    return root / "in"


@pytest.mark.parametrize(
    "case, needle",
    [
        ("dangling link", "part-9.parquet: a link to {root}/gone.parquet, which does not exist"),
        ("fifo", "pipe.parquet: a FIFO, not a file or folder"),
        ("link loop", "sub/back: a link to {root}/in, a folder that holds it (a loop)"),
        ("fifo as the input", "pipe: a FIFO, not a file or folder"),
    ],
)
def test_unclassifiable_entries_are_refused(tmp_path, case, needle):
    folder = two_files(tmp_path)
    if case == "dangling link":
        (folder / "part-9.parquet").symlink_to(tmp_path / "gone.parquet")
    elif case == "fifo":
        os.mkfifo(folder / "pipe.parquet")
    elif case == "link loop":
        (folder / "sub" / "back").symlink_to(folder)
    else:
        os.mkfifo(tmp_path / "pipe")
        folder = tmp_path / "pipe"
    with pytest.raises(InputError) as caught:
        inspect_input(folder, "parquet")
    assert needle.format(root=tmp_path) in str(caught.value), str(caught.value)


def test_hidden_names_are_not_data_and_not_looked_at(tmp_path):
    """Spark's rule: ``_``/``.`` names are skipped unread (a FIFO among them is fine); ``_k=v`` is data."""
    folder = two_files(tmp_path)
    os.mkfifo(folder / "_fifo")
    (folder / ".crc").symlink_to(tmp_path / "gone")
    (folder / "_temporary" / "0").mkdir(parents=True)
    pq.write_table(pa.table({"id": [99]}), folder / "_temporary" / "0" / "part-x.parquet")
    assert inspect_input(folder, "parquet").num_rows == 20
    parts = tmp_path / "parts"  # a partition folder may start with "_": it is data, not a marker
    for value in (1, 2):
        (parts / f"_k={value}").mkdir(parents=True)
        pq.write_table(pa.table({"id": [20 + value]}), parts / f"_k={value}" / "part-0.parquet")
    assert inspect_input(parts, "parquet").num_rows == 2


def test_symlinked_subfolder_is_followed_on_every_backend(any_backend, tmp_path):
    """A linked subfolder's rows were left out of the run and of its reconciliation; now the link
    is followed, and every row of the real and the linked files is published once."""
    job_path = make_job(tmp_path / "job", rows=60, files=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(tmp_path / "job" / "input" / "part-001.parquet", elsewhere / "part-001.parquet")
    (tmp_path / "job" / "input" / "linked").symlink_to(elsewhere)
    job = load_job(job_path)
    result = run_job(job, any_backend, check_model=False)
    assert (result.rows_in, result.rows_out) == (60, 60)
    assert read_output(job.output_path).column("id").to_pylist() == list(range(60))


def test_unlistable_subfolder_is_refused():
    """``chmod 000 in/sub``, listed by a user who cannot list it: root lists anything, so a forked
    child drops to ``nobody`` (uid 65534) first, on an input in a folder that user may read."""
    root = Path(tempfile.mkdtemp(prefix="bp-listing-"))
    try:
        os.chmod(root, 0o755)
        folder = two_files(root)
        os.chmod(folder / "sub", 0o000)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # the child: drop privileges, list, report the error line, exit at once
            try:
                os.close(read_end)
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                try:
                    message = f"listed {inspect_input(folder, 'parquet').num_rows} rows"
                except InputError as exc:
                    message = str(exc)
                os.write(write_end, message.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            message = pipe.read()
        os.waitpid(child, 0)
        assert message == f"input folder {folder / 'sub'}: cannot be listed (Permission denied)", message
    finally:
        os.chmod(root / "in" / "sub", 0o755)
        shutil.rmtree(root, ignore_errors=True)
